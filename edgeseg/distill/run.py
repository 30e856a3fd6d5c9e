"""A distillation run: the frozen teacher, the student and its adapters, handed to the training loop.

Nothing here trains by itself: :func:`distill` builds the pieces and calls ``edgeseg.train.fit`` with the
distillation objective, the adapters as extra modules and the teacher as the reference model, so loop, AMP,
progress, evaluation, checkpoints, resume and torchrun are the trainer's. The saved student is an ordinary
edgeseg checkpoint (the adapters live only in ``last.pt``'s train state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from edgeseg.config import Recipe, load_recipe
from edgeseg.distill.config import DistillConfig
from edgeseg.errors import InputError

SECTIONS: dict[str, type] = {"distill": DistillConfig}


def load_distill_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Read a distillation recipe (the training sections plus ``distill:``) with ``--set`` overrides."""
    recipe = load_recipe(path, overrides, sections=SECTIONS)
    if not recipe.section("distill").teacher:
        raise InputError(f"{path}: distill.teacher is not set; name the teacher checkpoint to distil from")
    return recipe


def resume_distill_recipe(run_dir: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """The recipe stored in ``run_dir/last.pt`` of a distillation run, with ``--set`` overrides applied."""
    from edgeseg.train.rundir import recipe_for_resume

    recipe = recipe_for_resume(run_dir, overrides, sections=SECTIONS)
    if not recipe.section("distill").teacher:
        raise InputError(
            f"{Path(run_dir) / 'last.pt'} was not written by a distillation run (no distill.teacher)"
        )
    return recipe


def teacher_miou(run_dir: str | Path) -> float | None:
    """The teacher's mIoU recorded once in ``run_dir/metrics.jsonl`` (None if it is not there)."""
    from edgeseg.train.rundir import METRICS, MetricsLog

    for record in MetricsLog(Path(run_dir) / METRICS).read():
        if record.get("event") == "reference":
            return record.get("miou")
    return None


def distill(
    recipe: Recipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
):
    """Distil ``recipe.section("distill").teacher`` into the recipe's ``model`` in ``run_dir``.

    Returns the loop's ``FitResult``. The student is built as ``edgeseg train`` would build it, from the same
    seed, so a distilled run and a student-alone run of the same recipe start from the same weights and read
    the images in the same order. Errors naming the teacher's path: missing or unreadable file, classes that
    differ from the data's, a normalization that differs from the student's, unknown feature names.
    """
    from edgeseg.distill.adapters import FeatureAdapters
    from edgeseg.distill.objective import DistillObjective
    from edgeseg.distill.teacher import load_teacher
    from edgeseg.train.builders import build_datasets, build_model
    from edgeseg.train.distributed import env_rank
    from edgeseg.train.loop import SupervisedObjective, fit
    from edgeseg.train.state import seed_everything

    cfg: DistillConfig = recipe.section("distill")
    rank = env_rank()  # under torchrun only rank 0 talks, as in fit()
    say = (log or print) if rank == 0 else _silent
    # The same draws, in the same order, as fit() makes before it builds a model itself.
    seed_everything(recipe.train.seed + rank)
    train_ds, _ = build_datasets(recipe)
    student = build_model(recipe, train_ds.num_classes, say)
    teacher, teacher_ckpt = load_teacher(
        cfg.teacher, classes=train_ds.classes, mean=recipe.data.mean, std=recipe.data.std
    )
    say(f"teacher: {teacher_ckpt['model']['name']} from {cfg.teacher}")
    if cfg.student_init == "teacher" and not resume:
        from edgeseg.distill.inherit import inherit_weights

        try:
            say(inherit_weights(student, teacher).summary())
        except ValueError as err:
            raise InputError(f"distill.student_init=teacher: {cfg.teacher}: {err}") from err
    adapters = None
    if cfg.weights.feature > 0:
        adapters = FeatureAdapters(cfg.feature_pairs, student.feature_channels, teacher.feature_channels)
    label_terms = SupervisedObjective.from_recipe(recipe, train_ds.num_classes, train_ds.ignore_index).terms
    objective = DistillObjective(
        teacher, cfg, label_terms, adapters=adapters, ignore_index=train_ds.ignore_index
    )
    return fit(
        recipe,
        run_dir,
        resume=resume,
        force=force,
        model=student,
        objective=objective,
        extra_modules={"adapters": adapters} if adapters is not None else {},
        reference=("teacher", teacher),
        progress=progress,
        log=log,
    )


def _silent(message: str) -> None:
    """A log function that drops its message (ranks other than 0)."""
