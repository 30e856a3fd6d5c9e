"""``edgeseg pretrain``: train a zoo backbone as an image classifier, for ``model.pretrained`` later.

Under ``torchrun --nproc_per_node=N -m edgeseg pretrain RECIPE`` the same command trains with
DistributedDataParallel; only rank 0 prints and writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.run_options import Force, Output, Overrides, Quiet, Resume, run_job


def pretrain_command(
    recipe: Annotated[
        Path | None,
        typer.Argument(help="Pretraining recipe (YAML), e.g. recipes/pretrain_dsnet_synthetic.yaml."),
    ] = None,
    output: Output = None,
    overrides: Overrides = None,
    resume: Resume = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Pretrain a backbone (model.name: dsnet, qdsnet, mobilenetv2, resnet18...) as an image classifier.

    data.root is an ImageFolder tree (ROOT/train/CLASS/*.jpg, ROOT/val/CLASS/*.jpg) or 'synthetic' (object
    crops of the built-in scenes). The run folder gets best.pt (best validation top-1), last.pt
    (resumable), metrics.jsonl (top-1/top-5 per evaluation) and recipe.yaml. Use best.pt as
    model.pretrained in a segmentation recipe on the same backbone.
    """
    from edgeseg.pretrain import load_pretrain_recipe, pretrain, resume_pretrain_recipe

    result = run_job(
        recipe, output, resume, overrides, load=load_pretrain_recipe, load_resumed=resume_pretrain_recipe,
        job=pretrain, force=force, quiet=quiet,
    )  # fmt: skip
    if result is not None:
        typer.echo(
            f"best top-1 {result.best_miou:.4f} at epoch {result.best_epoch}; "
            f"checkpoints in {result.run_dir} ({result.best_path.name}, {result.last_path.name})"
        )


def register(app: typer.Typer) -> None:
    """Add ``edgeseg pretrain`` to ``app``."""
    app.command("pretrain")(pretrain_command)
