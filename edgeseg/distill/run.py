"""A distillation run: the frozen teacher, the student and its adapters, handed to the training loop.

Nothing here trains by itself: :func:`distill` opens the teacher and calls ``edgeseg.train.fit`` with a
set-up hook that adds the distillation objective, the adapters as extra modules and the teacher as the
reference model to the pieces the loop builds (the student among them), so loop, AMP, progress, evaluation,
checkpoints, resume and torchrun are the trainer's. The saved student is an ordinary
edgeseg checkpoint (the adapters live only in ``last.pt``'s train state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from edgeseg.config import Recipe, load_recipe
from edgeseg.distill.config import STUDENT_INITS, DistillConfig
from edgeseg.errors import InputError
from edgeseg.train.setup import RunPieces, SetupContext

if TYPE_CHECKING:
    from edgeseg.distill.teacher import CheckpointTeacher, Teacher
    from edgeseg.distill.unlabelled import UnlabelledImages

SECTIONS: dict[str, type] = {"distill": DistillConfig}


def load_distill_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Read a distillation recipe (the training sections plus ``distill:``) with ``--set`` overrides."""
    recipe = load_recipe(path, overrides, sections=SECTIONS)
    if not recipe.section("distill").teacher:
        raise InputError(
            f"{path}: distill.teacher is not set; name the teacher checkpoint or ONNX file to distil from"
        )
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
    stop_after_steps: int | None = None,
):
    """Distil ``recipe.section("distill").teacher`` into the recipe's ``model`` in ``run_dir``.

    Returns the loop's ``FitResult``. The student is built by the loop as ``edgeseg train`` builds it, and
    the teacher, the adapters and the distillation objective join through ``fit``'s set-up hook, so a
    distilled run and a student-alone run of the same recipe start from the same weights and read the same
    batches. The teacher is an edgeseg checkpoint or an ONNX file (:mod:`edgeseg.distill.onnx_teacher`).
    Errors naming the teacher's path: missing or unreadable file, classes that differ from the data's, a
    normalization that differs from the student's, unknown feature names. ``stop_after_steps`` is ``fit``'s
    (stop there, as an interrupted run would).
    """
    from edgeseg.train.loop import fit

    cfg: DistillConfig = recipe.section("distill")
    teacher = open_teacher(cfg)  # file errors before anything is built or the run folder touched
    init_source = open_init_source(cfg)
    unlabelled = open_unlabelled(cfg, recipe)
    return fit(
        recipe,
        run_dir,
        resume=resume,
        force=force,
        setup=partial(_distill_pieces, cfg, teacher, init_source, unlabelled),
        progress=progress,
        log=log,
        stop_after_steps=stop_after_steps,
    )


def open_teacher(cfg: DistillConfig) -> Teacher:
    """The teacher named by ``distill.teacher``: a checkpoint's model, or an ONNX Runtime session."""
    from edgeseg.distill.onnx_teacher import OnnxTeacher, is_onnx
    from edgeseg.distill.teacher import read_teacher

    if is_onnx(cfg.teacher):
        return OnnxTeacher.open(
            cfg.teacher,
            mean=cfg.teacher_mean or None,
            std=cfg.teacher_std or None,
            num_classes=cfg.teacher_num_classes or None,
            provider=cfg.teacher_provider,
        )
    return read_teacher(cfg.teacher)


def open_init_source(cfg: DistillConfig) -> CheckpointTeacher | None:
    """The checkpoint ``distill.student_init`` names when it is a path (not ``scratch``/``teacher``)."""
    from edgeseg.distill.teacher import read_teacher

    if cfg.student_init in STUDENT_INITS:
        return None
    missing = (
        "checkpoint not found: {path} (train that model first, e.g. the assistant, or set "
        "distill.student_init=scratch)"
    )
    try:
        return read_teacher(cfg.student_init, missing)
    except InputError as err:
        raise InputError(f"distill.student_init: {err}") from err


def open_unlabelled(cfg: DistillConfig, recipe: Recipe) -> UnlabelledImages | None:
    """The stream of unlabelled images that ``distill.unlabelled`` names, or None."""
    if not cfg.unlabelled:
        return None
    from edgeseg.distill.unlabelled import UnlabelledImages

    batch = cfg.unlabelled_batch or recipe.data.batch_size
    return UnlabelledImages(cfg.unlabelled, cfg.unlabelled_count, batch, recipe.data, recipe.train.seed)


def alone_epochs(recipe: Recipe) -> int:
    """Epochs for the student alone (``recipe`` without ``distill:``) that give the distilled run's number of
    optimizer steps: ``train.epochs``, except with ``distill.unlabelled_mode: pseudo``, whose epochs also
    cover the teacher-labelled images (steps per epoch ``(labelled + unlabelled) // batch`` instead of
    ``labelled // batch``; single process)."""
    cfg: DistillConfig = recipe.section("distill")
    epochs = recipe.train.epochs
    if not (cfg.unlabelled and cfg.unlabelled_mode == "pseudo"):
        return epochs
    from edgeseg.train.builders import build_datasets

    labelled = len(build_datasets(recipe)[0])
    unlabelled = open_unlabelled(cfg, recipe)
    batch = recipe.data.batch_size
    steps = epochs * ((labelled + unlabelled.size) // batch)
    return max(1, round(steps / max(1, labelled // batch)))


def _distill_pieces(
    cfg: DistillConfig,
    teacher: Teacher,
    init_source: CheckpointTeacher | None,
    unlabelled: UnlabelledImages | None,
    setup: SetupContext,
) -> RunPieces:
    """``fit``'s set-up hook: check the teacher against the data, initialise the student from it (or from
    the ``student_init`` checkpoint) if asked, and build the adapters and the distillation objective."""
    from edgeseg.distill.adapters import FeatureAdapters
    from edgeseg.distill.objective import DistillObjective
    from edgeseg.train.objective import SupervisedObjective

    recipe, data, student = setup.recipe, setup.train_ds, setup.model
    model = teacher.check(classes=data.classes, mean=setup.mean, std=setup.std)
    setup.log(f"teacher: {teacher.describe()}")
    pseudo = None
    if unlabelled is not None and cfg.unlabelled_mode == "pseudo":
        from edgeseg.distill.unlabelled import PseudoLabelled

        pseudo = PseudoLabelled(
            unlabelled,
            model,
            classes=data.classes,
            palette=data.palette,
            mean=setup.mean,
            std=setup.std,
            ignore_index=data.ignore_index,
            threshold=cfg.pseudo_threshold,
            device=setup.device,
            log=setup.log,
        )
    elif unlabelled is not None:
        setup.log(unlabelled.describe())
    if cfg.student_init != "scratch" and not setup.resume:
        from edgeseg.distill.inherit import inherit_weights

        source, name, where = model, "the teacher", f"teacher: {cfg.teacher}"
        if init_source is not None:
            try:
                source = init_source.check(classes=data.classes, mean=setup.mean, std=setup.std)
            except InputError as err:
                raise InputError(f"distill.student_init: {err}") from err
            name = where = cfg.student_init
        try:
            setup.log(inherit_weights(student, source).summary(name))
        except ValueError as err:
            raise InputError(f"distill.student_init={where}: {err}") from err
    adapters = None
    if cfg.weights.feature > 0:
        adapters = FeatureAdapters(cfg.feature_pairs, student.feature_channels, model.feature_channels)
    label_terms = SupervisedObjective.from_recipe(recipe, data.num_classes, data.ignore_index).terms
    objective = DistillObjective(model, cfg, label_terms, adapters=adapters, ignore_index=data.ignore_index)
    return RunPieces(
        objective=objective,
        extra_modules={"adapters": adapters} if adapters is not None else {},
        reference=("teacher", model),
        extra_batch=unlabelled if pseudo is None else None,
        train_extra=pseudo,
    )
