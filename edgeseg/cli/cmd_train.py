"""``edgeseg train``: train a recipe into a run folder (best.pt, last.pt, metrics.jsonl), resumable.

Under ``torchrun --nproc_per_node=N -m edgeseg train RECIPE`` the same command trains with
DistributedDataParallel; only rank 0 prints and writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def train_command(
    recipe: Annotated[
        Path | None, typer.Argument(help="Training recipe (YAML), e.g. recipes/unet.yaml.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Run folder (default: runs/RECIPE_NAME).")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key, e.g. --set train.epochs=1 (repeatable)."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue the run in this folder from its last.pt (no RECIPE needed)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Start again in a folder that holds a run.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train a segmentation model from a recipe; evaluates on the validation split as it goes.

    The run folder gets best.pt (best validation mIoU), last.pt (resumable), metrics.jsonl (one line per
    epoch) and recipe.yaml (the resolved recipe). With --resume, the run's own recipe is used (--set may
    still change it, e.g. train.epochs to train longer).
    """
    from edgeseg.config import load_recipe
    from edgeseg.train import fit, recipe_for_resume
    from edgeseg.train.distributed import is_main_process
    from edgeseg.train.rundir import resolve_run

    sets = list(overrides or [])
    cfg, run_dir, note = resolve_run(
        recipe, output, resume, sets, load=load_recipe, load_resumed=recipe_for_resume
    )
    if note:
        typer.echo(note, err=True)
    result = fit(cfg, run_dir, resume=resume is not None, force=force, progress=not quiet)
    if is_main_process():
        typer.echo(
            f"best mIoU {result.best_miou:.4f} at epoch {result.best_epoch}; "
            f"checkpoints in {result.run_dir} ({result.best_path.name}, {result.last_path.name})"
        )


def register(app: typer.Typer) -> None:
    """Add ``edgeseg train`` to ``app``."""
    app.command("train")(train_command)
