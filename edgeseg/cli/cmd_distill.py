"""``edgeseg distill``: train a compact student against a frozen teacher (see ``edgeseg.distill``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.run_options import Force, Output, Overrides, Quiet, Resume, run_job


def distill_command(
    recipe: Annotated[
        Path | None,
        typer.Argument(help="Distillation recipe (YAML): the student's training sections plus 'distill:'."),
    ] = None,
    output: Output = None,
    overrides: Overrides = None,
    resume: Resume = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Distil a teacher into a student: pixel-wise KD, channel-wise KD, relation KD and feature KD plus CE.

    The teacher (distill.teacher) is an edgeseg checkpoint or an ONNX file: an edgeseg export, or any model
    that returns class scores NxCxHxW (set distill.teacher_mean/teacher_std when the file carries no edgeseg
    metadata). An ONNX teacher serves the logit losses; feature KD needs a checkpoint.

    With distill.student_init=teacher, a student that is a narrower copy of the teacher's design starts
    from the teacher's own weights (weight selection); its depthwise-separable layers that stand where the
    teacher has full convolutions (U-Net to unet_ds, the DeepLabV3+ head) start from their decomposition.

    For a student far smaller than its teacher: start it from a model between the two in size
    (distill.student_init=assistant.pt, e.g. a wider student distilled first) and let the teacher label
    unlabelled images once, which then train the student as labelled ones (distill.unlabelled=DIR,
    distill.unlabelled_mode=pseudo).

    The run folder gets best.pt / last.pt (ordinary student checkpoints, adapters dropped), metrics.jsonl
    (the teacher's mIoU once, the student's at each evaluation) and recipe.yaml.
    """
    from edgeseg.distill.run import distill, load_distill_recipe, resume_distill_recipe, teacher_miou

    result = run_job(
        recipe, output, resume, overrides, load=load_distill_recipe, load_resumed=resume_distill_recipe,
        job=distill, force=force, quiet=quiet,
    )  # fmt: skip
    if result is None:
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
