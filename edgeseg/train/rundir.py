"""The run folder: ``best.pt``, ``last.pt``, ``metrics.jsonl`` and the resolved ``recipe.yaml``.

A folder that already holds a run is never overwritten silently: starting again needs ``force`` (which
removes the old run's files first), continuing needs ``resume``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from edgeseg.config import CORE_SECTIONS, Recipe, apply_override
from edgeseg.errors import InputError
from edgeseg.fileio import write_text_atomic

BEST = "best.pt"
LAST = "last.pt"
METRICS = "metrics.jsonl"
RECIPE = "recipe.yaml"
RUN_FILES = (BEST, LAST, METRICS, RECIPE)


def prepare_run_dir(run_dir: str | Path, *, resume: bool, force: bool) -> Path:
    """Check that ``run_dir`` may be used as asked and create it; return it as a Path.

    ``resume`` needs ``last.pt`` there. Without it, a folder holding ``last.pt`` or ``best.pt`` is refused
    unless ``force``, in which case those run files are deleted (other files are left alone).
    """
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise InputError(f"run folder {path} exists and is not a folder")
    if resume:
        if not (path / LAST).is_file():
            raise InputError(f"cannot resume: {path / LAST} does not exist")
        return path
    existing = [name for name in (BEST, LAST) if (path / name).exists()]
    if existing and not force:
        raise InputError(
            f"{path} already holds a run ({', '.join(existing)}); pass --resume {path} to continue it "
            "or --force to start again"
        )
    if existing:
        for name in RUN_FILES:
            (path / name).unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_run(
    recipe: str | Path | None,
    output: str | Path | None,
    resume: str | Path | None,
    overrides: list[str],
    *,
    load: Callable[[Path, list[str]], Recipe],
    load_resumed: Callable[[Path, list[str]], Recipe],
) -> tuple[Recipe, Path, str | None]:
    """The recipe and run folder of ``edgeseg train``/``distill``: a new run of ``recipe`` (in ``output``,
    default ``runs/RECIPE_NAME``) or the run in ``resume`` with its own recipe (``load_resumed``); both
    loaders get the ``--set`` ``overrides``.

    Returns ``(recipe, run_dir, note)``; ``note`` says when a ``recipe`` given with ``resume`` differs from
    the run's own, which is the one used. InputError for contradictory or missing arguments.
    """
    if resume is not None:
        run_dir = Path(resume)
        if output is not None and Path(output).resolve() != run_dir.resolve():
            raise InputError(f"--resume {resume} and -o {output} name different folders; give one of them")
        if not (run_dir / LAST).is_file():
            raise InputError(f"cannot resume: {run_dir / LAST} does not exist")
        cfg = load_resumed(run_dir, overrides)
        note = None
        if recipe is not None and load(Path(recipe), overrides).to_dict() != cfg.to_dict():
            note = f"note: {recipe} differs from the run's recipe; continuing with the run's"
        return cfg, run_dir, note
    if recipe is None:
        raise InputError("give a RECIPE to start a run, or --resume RUN_DIR to continue one")
    run_dir = Path(output) if output is not None else Path("runs") / Path(recipe).stem
    return load(Path(recipe), overrides), run_dir, None


def recipe_for_resume(
    run_dir: str | Path, overrides: Iterable[str] = (), sections: Mapping[str, type] | None = None
) -> Recipe:
    """The recipe stored in ``run_dir/last.pt``, with ``--set`` overrides applied (e.g. more epochs)."""
    from edgeseg.checkpoint import load_checkpoint

    ckpt = load_checkpoint(Path(run_dir) / LAST)
    raw = ckpt.get("recipe") or {}
    foreign = sorted(set(raw) - set(CORE_SECTIONS) - set(sections or {}))
    if foreign:
        raise InputError(
            f"{Path(run_dir) / LAST} was trained with recipe sections this command does not know "
            f"({', '.join(foreign)}); resume it with the command that started it (e.g. edgeseg {foreign[0]})"
        )
    overrides = list(overrides)
    for item in overrides:
        apply_override(raw, item)
    source = f"{Path(run_dir) / LAST}" + (" with --set " + " ".join(overrides) if overrides else "")
    return Recipe.from_dict(raw, sections, source=source)


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line (``event`` is ``"epoch"`` or ``"reference"``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one line (flushed, so a killed run keeps every line written before)."""
        with self.path.open("a") as f:
            f.write(json.dumps(record, allow_nan=False, default=_json_default) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """All records (an absent file is empty)."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def keep_until(self, epoch: int) -> None:
        """Drop epoch lines after ``epoch`` (written by a run killed before its checkpoint), atomically."""
        kept = [r for r in self.read() if r.get("event") != "epoch" or r.get("epoch", 0) <= epoch]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def clean_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """NaN → None recursively so the record is valid JSON (absent classes have NaN IoU)."""

    def fix(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, Mapping):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return fix(dict(metrics))


def write_recipe(run_dir: Path, recipe: Recipe) -> None:
    """Save the resolved recipe as ``recipe.yaml`` beside the checkpoints, for people to read."""
    import yaml

    write_text_atomic(run_dir / RECIPE, yaml.safe_dump(recipe.to_dict(), sort_keys=False))
