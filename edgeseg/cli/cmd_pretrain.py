"""``edgeseg pretrain``: train a zoo backbone as an image classifier, for ``model.pretrained`` later.

Under ``torchrun --nproc_per_node=N -m edgeseg pretrain RECIPE`` the same command trains with
DistributedDataParallel; only rank 0 prints and writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def pretrain_command(
    recipe: Annotated[
        Path | None,
        typer.Argument(help="Pretraining recipe (YAML), e.g. recipes/pretrain_dsnet_synthetic.yaml."),
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
    """Pretrain a backbone (model.name: dsnet, qdsnet, mobilenetv2, resnet18...) as an image classifier.

    data.root is an ImageFolder tree (ROOT/train/CLASS/*.jpg, ROOT/val/CLASS/*.jpg) or 'synthetic' (object
    crops of the built-in scenes). The run folder gets best.pt (best validation top-1), last.pt
    (resumable), metrics.jsonl (top-1/top-5 per evaluation) and recipe.yaml. Use best.pt as
    model.pretrained in a segmentation recipe on the same backbone.
    """
    from edgeseg.pretrain import load_pretrain_recipe, pretrain, resume_pretrain_recipe
    from edgeseg.train.distributed import is_main_process
    from edgeseg.train.rundir import resolve_run

    sets = list(overrides or [])
    cfg, run_dir, note = resolve_run(
        recipe, output, resume, sets, load=load_pretrain_recipe, load_resumed=resume_pretrain_recipe
    )
    if note:
        typer.echo(note, err=True)
    result = pretrain(cfg, run_dir, resume=resume is not None, force=force, progress=not quiet)
    if is_main_process():
        typer.echo(
            f"best top-1 {result.best_miou:.4f} at epoch {result.best_epoch}; "
            f"checkpoints in {result.run_dir} ({result.best_path.name}, {result.last_path.name})"
        )


def register(app: typer.Typer) -> None:
    """Add ``edgeseg pretrain`` to ``app``."""
    app.command("pretrain")(pretrain_command)
