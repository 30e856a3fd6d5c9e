"""``edgeseg train``: train a recipe into a run folder (best.pt, last.pt, metrics.jsonl), resumable.

Under ``torchrun --nproc_per_node=N -m edgeseg train RECIPE`` the same command trains with
DistributedDataParallel; only rank 0 prints and writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.run_options import Force, Output, Overrides, Quiet, Resume, run_job


def train_command(
    recipe: Annotated[
        Path | None, typer.Argument(help="Training recipe (YAML), e.g. recipes/unet.yaml.")
    ] = None,
    output: Output = None,
    overrides: Overrides = None,
    resume: Resume = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train a segmentation model from a recipe; evaluates on the validation split as it goes.

    The run folder gets best.pt (best validation mIoU), last.pt (resumable), metrics.jsonl (one line per
    epoch) and recipe.yaml (the resolved recipe). With --resume, the run's own recipe is used (--set may
    still change it, e.g. train.epochs to train longer).
    """
    from edgeseg.config import load_recipe
    from edgeseg.train import fit, recipe_for_resume

    result = run_job(
        recipe, output, resume, overrides, load=load_recipe, load_resumed=recipe_for_resume, job=fit,
        force=force, quiet=quiet,
    )  # fmt: skip
    if result is not None:
        typer.echo(
            f"best mIoU {result.best_miou:.4f} at epoch {result.best_epoch}; "
            f"checkpoints in {result.run_dir} ({result.best_path.name}, {result.last_path.name})"
        )


def register(app: typer.Typer) -> None:
    """Add ``edgeseg train`` to ``app``."""
    app.command("train")(train_command)
