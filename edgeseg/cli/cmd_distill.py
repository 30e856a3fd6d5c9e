"""``edgeseg distill``: train a compact student against a frozen teacher (see ``edgeseg.distill``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def distill_command(
    recipe: Annotated[
        Path | None,
        typer.Argument(help="Distillation recipe (YAML): the student's training sections plus 'distill:'."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Run folder (default: runs/RECIPE_NAME).")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key, e.g. --set distill.weights.kd=2 (repeatable)."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue the run in this folder from its last.pt."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Start again in a folder that holds a run.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Distil a teacher into a student: pixel-wise KD, channel-wise KD, relation KD and feature KD plus CE.

    The teacher (distill.teacher) is an edgeseg checkpoint or an ONNX file: an edgeseg export, or any model
    that returns class scores NxCxHxW (set distill.teacher_mean/teacher_std when the file carries no edgeseg
    metadata). An ONNX teacher serves the logit losses; feature KD needs a checkpoint.

    With distill.student_init=teacher, a student that is a narrower copy of the teacher's design starts
    from the teacher's own weights (weight selection).

    The run folder gets best.pt / last.pt (ordinary student checkpoints, adapters dropped), metrics.jsonl
    (the teacher's mIoU once, the student's at each evaluation) and recipe.yaml.
    """
    from edgeseg.distill.run import distill, load_distill_recipe, resume_distill_recipe, teacher_miou
    from edgeseg.train.distributed import is_main_process
    from edgeseg.train.rundir import resolve_run

    sets = list(overrides or [])
    load, load_resumed = load_distill_recipe, resume_distill_recipe
    cfg, run_dir, note = resolve_run(recipe, output, resume, sets, load=load, load_resumed=load_resumed)
    if note:
        typer.echo(note, err=True)
    result = distill(cfg, run_dir, resume=resume is not None, force=force, progress=not quiet)
    if not is_main_process():
        return
    teacher = teacher_miou(result.run_dir)
    typer.echo(
        (f"teacher mIoU {teacher:.4f}; " if teacher is not None else "")
        + f"student best mIoU {result.best_miou:.4f} at epoch {result.best_epoch}; "
        f"checkpoints in {result.run_dir} ({result.best_path.name}, {result.last_path.name})"
    )


def register(app: typer.Typer) -> None:
    """Add ``edgeseg distill`` to ``app``."""
    app.command("distill")(distill_command)
