"""The pipeline recipe: shared data, a teacher, a student, distillation, export, INT8, benchmark, report.

A pipeline recipe is YAML with these top-level sections (each optional, defaults apply)::

    data: {...}          # shared by every stage (edgeseg.data.DataConfig)
    augment: {...}       # shared by the training stages (teacher.augment / student.augment replace it)
    teacher:             # checkpoint: PATH reuses a trained teacher; else it is trained from
      recipe: PATH       #   a teacher recipe file (its model/optim/schedule/train sections) and/or
      model/optim/schedule/train: {...}   # inline sections, which win over the file's keys
    student:
      baseline: true     # also train the student alone, the yardstick of distillation
      model/optim/schedule/train: {...}
    distill: {...}       # edgeseg.distill.DistillConfig, without 'teacher' (the pipeline supplies it)
    export: {...}        # ExportSettings
    quantize: {...}      # QuantizeSettings
    bench: {...}         # BenchSettings
    report: {...}        # ReportSettings

Loading reuses ``edgeseg.config``: ``--set a.b=c`` works on any key (``teacher.train.epochs=1``), values are
parsed with ``yaml.safe_load``, and an unknown key is an error naming the closest valid one. Relative paths
(``teacher.recipe``, ``teacher.checkpoint``, ``data.root``) are relative to the current directory, as in
every edgeseg recipe. Torch-free.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from edgeseg.config import ModelConfig, OptimConfig, Recipe, ScheduleConfig, TrainConfig, apply_override
from edgeseg.data.config import AugmentConfig
from edgeseg.distill.config import DistillConfig
from edgeseg.errors import InputError
from edgeseg.export.tolerances import DEFAULT_MAX_IMAGES, FP32_TOLERANCES
from edgeseg.quantize import defaults as quantize_defaults

STAGE_SECTIONS = ("model", "optim", "schedule", "train")
"""Training sections that belong to one model (under ``teacher:``/``student:``), never at the top level."""


@dataclass
class TeacherConfig:
    """The teacher: reuse ``checkpoint``, or train it from ``recipe`` (a file) and the inline sections.

    ``augment``, when given, replaces the shared ``augment`` section for this model's training.
    """

    checkpoint: str | None = None
    recipe: str | None = None
    augment: AugmentConfig | None = None
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="unet"))
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class StudentConfig:
    """The compact student, trained alone (when ``baseline``) and distilled, with the same sections.

    ``augment``, when given, replaces the shared ``augment`` section for both student runs.
    """

    baseline: bool = True
    augment: AugmentConfig | None = None
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="lraspp_dsnet"))
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class ExportSettings:
    """ONNX export of every trained model and its parity gate on the first ``val_images`` validation images.

    ``checkpoint``: which checkpoint of a run is exported and reported (``best``: best validation mIoU;
    ``last``: the last epoch's, no selection on the validation split); the students learn from that of the
    teacher.
    ``opset``/``exporter``: None takes ``edgeseg export``'s defaults. Tolerances: None switches a check off.
    ``preprocess``/``coarse``: as ``edgeseg export --preprocess/--coarse`` (uint8 input normalized in the
    graph; logits at the output stride, upsampled by edgeseg's runtime): the fastest files for the runtime.
    """

    checkpoint: Literal["best", "last"] = "best"
    opset: int | None = None
    exporter: Literal["torchscript", "dynamo"] | None = None
    simplify: bool = True
    preprocess: bool = False
    coarse: bool = False
    val_images: int = DEFAULT_MAX_IMAGES
    max_abs_diff: float | None = FP32_TOLERANCES.max_abs
    min_agreement: float | None = FP32_TOLERANCES.min_agreement
    max_miou_delta: float | None = FP32_TOLERANCES.max_miou_delta

    def __post_init__(self) -> None:
        if self.val_images < 1:
            raise InputError(f"export.val_images: expected an integer >= 1, got {self.val_images}")


@dataclass
class QuantizeSettings:
    """INT8 of the distilled student through the accuracy gate (``edgeseg.quantize.quantize_file``).

    ``max_drop`` is in mIoU points (0-100 scale). When the gate fails the pipeline goes on without the INT8
    model and the report says why; ``required: true`` makes that failure the pipeline's exit code (1), after
    the report is written.
    """

    enabled: bool = True
    required: bool = False
    calib_size: int = quantize_defaults.CALIB_SIZE
    val_size: int = quantize_defaults.VAL_SIZE
    max_drop: float = quantize_defaults.MAX_DROP
    method: Literal["minmax", "entropy", "percentile"] = quantize_defaults.METHOD
    per_channel: bool = True
    max_float_nodes: int = quantize_defaults.MAX_FLOAT_NODES


@dataclass
class BenchSettings:
    """ONNX Runtime latency of every model file, timed round-robin in one run.

    ``size``: [H, W] of the timed input and of the GFLOP counts (None: the validation images' size).
    ``threads``: intra-op threads (None: ONNX Runtime's default). ``provider``: the execution provider timed
    (``cuda``/``tensorrt`` where ONNX Runtime offers them; asking for a missing one is an error).
    """

    size: list[int] | None = None
    provider: Literal["cpu", "cuda", "tensorrt"] = "cpu"
    batch: int = 1
    threads: int | None = None
    warmup: int = 10
    runs: int = 50

    def __post_init__(self) -> None:
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise InputError(f"bench.size: expected [height, width] with positive values, got {self.size}")
        for name in ("batch", "runs"):
            if getattr(self, name) < 1:
                raise InputError(f"bench.{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise InputError(f"bench.warmup: expected an integer >= 0, got {self.warmup}")


@dataclass
class ReportSettings:
    """The report: its title and how many validation images the sample grid shows."""

    title: str = "edgeseg pipeline report"
    samples: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.samples <= 16:
            raise InputError(f"report.samples: expected 1 to 16 images, got {self.samples}")


SECTIONS: dict[str, type] = {
    "teacher": TeacherConfig,
    "student": StudentConfig,
    "distill": DistillConfig,
    "export": ExportSettings,
    "quantize": QuantizeSettings,
    "bench": BenchSettings,
    "report": ReportSettings,
}


@dataclass
class PipelineRecipe:
    """A resolved pipeline recipe; ``recipe`` holds ``data``, ``augment`` and the sections above."""

    recipe: Recipe
    source: str

    def section(self, name: str) -> Any:
        """One of the pipeline sections (``teacher``, ``student``, ``distill``, ``export``, ...)."""
        return self.recipe.section(name)

    @property
    def teacher(self) -> TeacherConfig:
        """The ``teacher`` section."""
        return self.section("teacher")

    @property
    def student(self) -> StudentConfig:
        """The ``student`` section."""
        return self.section("student")

    def teacher_recipe(self) -> Recipe:
        """The training recipe of the teacher: its sections with the shared data and augmentation."""
        return self._stage_recipe(self.teacher)

    def student_recipe(self) -> Recipe:
        """The training recipe of the student alone (the baseline)."""
        return self._stage_recipe(self.student)

    def distill_recipe(self, teacher_checkpoint: str | Path) -> Recipe:
        """The student's recipe plus the ``distill`` section pointing at ``teacher_checkpoint``."""
        cfg = dataclasses.replace(self.section("distill"), teacher=str(teacher_checkpoint))
        return dataclasses.replace(self._stage_recipe(self.student), sections={"distill": cfg})

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of the whole resolved recipe (what ``pipeline.yaml`` holds)."""
        return {k: v for k, v in self.recipe.to_dict().items() if k not in STAGE_SECTIONS}

    def _stage_recipe(self, stage: TeacherConfig | StudentConfig) -> Recipe:
        """A training recipe: the stage's own sections with the shared data (and augmentation)."""
        r = self.recipe
        return Recipe(
            model=stage.model,
            data=r.data,
            augment=stage.augment if stage.augment is not None else r.augment,
            optim=stage.optim,
            schedule=stage.schedule,
            train=stage.train,
        )


def load_pipeline_recipe(path: str | Path, overrides: Iterable[str] = ()) -> PipelineRecipe:
    """Read a pipeline recipe, apply ``--set`` overrides, merge a teacher recipe file, validate everything.

    Errors are :class:`InputError` naming the file or override: a missing file, bad YAML, an unknown key
    (with the closest valid key), a wrong value type, a top-level training section (they belong under
    ``teacher:`` or ``student:``), ``distill.teacher`` (the pipeline supplies it), or both
    ``teacher.checkpoint`` and ``teacher.recipe``.
    """
    p = Path(path)
    raw = _read_yaml(p, "pipeline recipe")
    overrides = list(overrides)
    for item in overrides:
        apply_override(raw, item)
    source = str(p) + (" with --set " + " ".join(overrides) if overrides else "")
    misplaced = [key for key in STAGE_SECTIONS if key in raw]
    if misplaced:
        where = ", ".join(f"teacher.{k} / student.{k}" for k in misplaced)
        raise InputError(f"{source}: a pipeline recipe has no top-level {', '.join(misplaced)}; use {where}")
    teacher = raw.get("teacher") or {}
    if isinstance(teacher, Mapping) and teacher.get("recipe"):
        if teacher.get("checkpoint"):
            raise InputError(f"{source}: give teacher.checkpoint (reuse) or teacher.recipe (train), not both")
        raw["teacher"] = _merge_teacher_recipe(Path(str(teacher["recipe"])), dict(teacher))
    distill = raw.get("distill")
    if isinstance(distill, Mapping) and distill.get("teacher"):
        raise InputError(
            f"{source}: distill.teacher is set by the pipeline; use teacher.checkpoint to reuse a teacher"
        )
    recipe = Recipe.from_dict(raw, SECTIONS, source=source)
    checkpoint = recipe.section("teacher").checkpoint
    if checkpoint and not Path(checkpoint).is_file():
        raise InputError(f"{source}: teacher.checkpoint {checkpoint} does not exist")
    return PipelineRecipe(recipe=recipe, source=source)


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    return raw


def _merge_teacher_recipe(path: Path, inline: dict[str, Any]) -> dict[str, Any]:
    """The teacher section: the recipe file's training sections, overlaid key by key with the inline ones.

    The file is validated as an ordinary training recipe; its ``data``/``augment`` sections are not used
    (the pipeline's shared ones are, so teacher and student see the same data).
    """
    file_raw = _read_yaml(path, "teacher recipe")
    Recipe.from_dict(file_raw, source=str(path))
    merged: dict[str, Any] = {k: v for k, v in file_raw.items() if k in STAGE_SECTIONS}
    return _deep_merge(merged, inline)


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def fingerprint(value: Any) -> str:
    """A short stable hash of a JSON-able value (dict keys sorted), for stage done-markers."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
