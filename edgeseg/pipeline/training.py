"""The training stages of the pipeline: teacher, student alone, distilled student, each in its own run folder.

Training is ``edgeseg.train.fit`` (and ``edgeseg.distill.distill``); this module only decides how a run
folder is used. A folder holding ``last.pt`` of the same recipe — a stage killed mid-training — is resumed
with the trainer's exact resume; one holding a run of another recipe is trained again only with ``force``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeseg.config import Recipe
from edgeseg.errors import InputError
from edgeseg.train.rundir import BEST, LAST, METRICS, MetricsLog

Log = Callable[[str], None]


def same_recipe(a: Any, b: Any) -> bool:
    """Whether two recipe dicts are equal once both are plain JSON (tuples and lists alike)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def resume_mode(recipe: Recipe, run_dir: Path, force: bool) -> tuple[bool, bool]:
    """``(resume, force)`` for ``fit``: resume a run of the same recipe, restart only when ``force``.

    A folder with ``last.pt`` written for this recipe resumes (a finished run resumes to its end at once).
    A folder holding a run of another recipe is refused without ``force``.
    """
    from edgeseg.checkpoint import load_checkpoint

    last = run_dir / LAST
    if last.is_file():
        ckpt = load_checkpoint(last)
        if same_recipe(ckpt.get("recipe"), recipe.to_dict()) and ckpt.get("train_state") is not None:
            return True, False
        if not force:
            raise InputError(
                f"{run_dir} holds a training run of another recipe; pass --force to train it again"
            )
        return False, True
    if (run_dir / BEST).is_file() and not force:
        raise InputError(f"{run_dir} holds {BEST} but no {LAST} to resume from; pass --force to train again")
    return False, force


def train_stage(
    recipe: Recipe,
    run_dir: Path,
    *,
    distill: bool = False,
    force: bool = False,
    progress: bool = True,
    log: Log | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` into ``run_dir`` (resuming a killed run of it); return the stage's results.

    ``distill`` runs ``edgeseg.distill.distill`` (the recipe carries the ``distill`` section), else
    ``edgeseg.train.fit``. Results: best and last checkpoint paths, best mIoU and its epoch, epochs,
    whether the run was resumed, and the teacher's mIoU for distillation runs.
    """
    resume, restart = resume_mode(recipe, run_dir, force)
    if resume and log is not None:
        log(f"resuming the run in {run_dir}")
    if distill:
        from edgeseg.distill import distill as run_distill

        result = run_distill(recipe, run_dir, resume=resume, force=restart, progress=progress, log=log)
    else:
        from edgeseg.train import fit

        result = fit(recipe, run_dir, resume=resume, force=restart, progress=progress, log=log)
    out: dict[str, Any] = {
        "run_dir": str(run_dir),
        "best": str(result.best_path),
        "last": str(result.last_path),
        "best_miou": result.best_miou,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "resumed": resume,
    }
    if distill:
        from edgeseg.distill import teacher_miou

        out["teacher_miou"] = teacher_miou(run_dir)
    return out


def reuse_teacher(checkpoint: str | Path, classes: list[str]) -> dict[str, Any]:
    """Results of the teacher stage when an existing checkpoint is reused (its classes must be the data's)."""
    from edgeseg.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    have = list(ckpt.get("classes") or [])
    if have != list(classes):
        raise InputError(
            f"teacher.checkpoint {checkpoint} predicts classes {have}, but the data has {list(classes)}"
        )
    miou = (ckpt.get("metrics") or {}).get("miou")
    return {"best": str(checkpoint), "last": str(checkpoint), "best_miou": miou, "reused": True}


def history(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch records of a run's ``metrics.jsonl`` (empty when the run has none)."""
    return [r for r in MetricsLog(run_dir / METRICS).read() if r.get("event") == "epoch"]
