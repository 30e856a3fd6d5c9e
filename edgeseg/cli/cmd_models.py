"""``edgeseg models``: every registered model with its parameters and GFLOPs at an input size."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import typer

from edgeseg.errors import InputError

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
MIN_SIDE = 32


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (e.g. ``512x512``); both sides at least 32, else ``InputError``."""
    match = _SIZE.match(text)
    if match is None:
        raise InputError(f"--size {text!r} is not HxW (for example 512x512)")
    height, width = int(match.group(1)), int(match.group(2))
    if height < MIN_SIDE or width < MIN_SIDE:
        raise InputError(f"--size {text!r}: height and width must be at least {MIN_SIDE}")
    return height, width


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
    rows = model_table(parse_size(size))
    if as_json:
        typer.echo(json.dumps(rows))
        return
    from rich.console import Console
    from rich.table import Table

    height, width = rows[0]["size"] if rows else parse_size(size)
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
