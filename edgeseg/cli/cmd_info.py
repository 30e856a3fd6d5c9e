"""``edgeseg info``: what an ONNX model takes, returns, contains and says about itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


def _shape(dims: list[Any]) -> str:
    return "×".join(str(d) for d in dims) if dims else "scalar"


def print_info(info: dict[str, Any]) -> None:
    """Render :func:`edgeseg.export.info.onnx_info`'s dict as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    opsets = ", ".join(f"{domain} {version}" for domain, version in info["opset"].items())
    console.print(
        f"[bold]{info['path']}[/]  {info['file_size'] / 1e6:.2f} MB, {info['parameters']:,} parameters, "
        f"{info['nodes']} nodes, opset {opsets}, IR {info['ir_version']}, {info['producer']}",
        highlight=False,
    )
    io_table = Table(title="inputs and outputs")
    for column in ("kind", "name", "dtype", "shape"):
        io_table.add_column(column)
    for kind in ("inputs", "outputs"):
        for value in info[kind]:
            io_table.add_row(kind[:-1], value["name"], value["dtype"], _shape(value["shape"]))
    console.print(io_table)
    ops_table = Table(title="nodes by op type")
    ops_table.add_column("op")
    ops_table.add_column("count", justify="right")
    for op, count in info["ops"].items():
        ops_table.add_row(op, str(count))
    console.print(ops_table)
    meta_table = Table(title="metadata" if info["metadata"] else "metadata: none")
    meta_table.add_column("key")
    meta_table.add_column("value", overflow="fold")
    for key, value in info["metadata"].items():
        meta_table.add_row(key, value if len(value) <= 300 else value[:297] + "...")
    console.print(meta_table)


def info_command(
    model: Annotated[Path, typer.Argument(help="An ONNX model file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as one JSON object.")] = False,
) -> None:
    """Show an ONNX model's inputs, outputs, opset, ops, parameters, size and metadata.

    Inputs and outputs come with shapes (symbolic dimensions by name) and dtypes; nodes are counted by op
    type. A missing, truncated or non-ONNX file is an error (exit code 2).
    """
    from edgeseg.export.info import onnx_info

    info = onnx_info(model)
    if as_json:
        typer.echo(json.dumps(info))
    else:
        print_info(info)


def register(app: typer.Typer) -> None:
    """Add ``edgeseg info`` to ``app``."""
    app.command("info")(info_command)
