"""``edgeseg models``: every registered model with its parameters and GFLOPs at an input size."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from edgeseg.sizes import parse_hw

MIN_SIDE = 32


def model_table(size: tuple[int, int]) -> list[dict[str, Any]]:
    """One row per registered model (default arguments): name, params, params_m, gflops, size.

    Models are built on the ``meta`` device, so nothing is allocated or computed beyond shapes.
    """
    import torch

    from edgeseg.models import complexity, create, list_models

    rows = []
    for name in list_models():
        with torch.device("meta"):
            model = create(name)
        params, gflops = complexity(model, size)
        rows.append(
            {
                "name": name,
                "params": params,
                "params_m": round(params / 1e6, 3),
                "gflops": round(gflops, 3),
                "size": list(size),
            }
        )
    return rows


def models_command(
    size: Annotated[str, typer.Option("--size", help="Input size HxW for the GFLOPs column.")] = "512x512",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List every registered model with its parameters (millions) and GFLOPs (multiply-accumulates × 1e-9,
    torchvision's convention) at ``--size`` (default 512x512), built with default arguments (21 classes).
    """
    rows = model_table(parse_hw(size, "--size", MIN_SIDE))
    if as_json:
        typer.echo(json.dumps(rows))
        return
    from rich.console import Console
    from rich.table import Table

    height, width = rows[0]["size"] if rows else parse_hw(size, "--size", MIN_SIDE)
    table = Table(title=f"edgeseg models (21 classes, {height}×{width} input)")
    table.add_column("model")
    table.add_column("params (M)", justify="right")
    table.add_column("GFLOPs", justify="right")
    for row in rows:
        table.add_row(row["name"], f"{row['params_m']:.2f}", f"{row['gflops']:.2f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``edgeseg models`` to ``app``."""
    app.command("models")(models_command)
