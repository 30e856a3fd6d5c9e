"""Knowledge distillation: a frozen teacher (checkpoint or ONNX file) → a compact student, through the loop.

- ``losses``: pixel-wise KD, channel-wise distillation (CWD), relation KD (DIST-style) and feature KD as
  pure functions, plus
  :func:`valid_pixels` (ignore and MixUp aware).
- ``adapters``: :class:`FeatureAdapters`, the 1×1 convs from student to teacher channels (trained, not saved
  with the student).
- ``objective``: :class:`DistillObjective`, what ``edgeseg.train.fit`` minimises in a distillation run.
- ``teacher``: :func:`read_teacher` / :class:`CheckpointTeacher` (frozen, with checks against the data's
  classes and normalization), the :class:`Teacher` protocol.
- ``onnx_teacher``: :class:`OnnxTeacher`, an ONNX file as the teacher (logit losses), run in ONNX Runtime.
- ``inherit``: :func:`inherit_weights`, weight selection that starts a narrower student from its teacher
  (``distill.student_init: teacher``).
- ``config``: :class:`DistillConfig`, the recipe's ``distill:`` section.
- ``run``: :func:`distill` (what ``edgeseg distill`` runs; the pieces go into ``fit``'s set-up hook),
  :func:`open_teacher` and the recipe loaders.
"""

from edgeseg.distill.adapters import FeatureAdapters
from edgeseg.distill.config import DistillConfig, LossWeights
from edgeseg.distill.inherit import InheritReport, inherit_weights
from edgeseg.distill.losses import (
    channelwise_kd_loss,
    feature_kd_loss,
    pixel_kd_loss,
    relation_kd_loss,
    valid_pixels,
)
from edgeseg.distill.objective import DistillObjective
from edgeseg.distill.onnx_teacher import OnnxTeacher
from edgeseg.distill.run import (
    SECTIONS,
    distill,
    load_distill_recipe,
    open_teacher,
    resume_distill_recipe,
    teacher_miou,
)
from edgeseg.distill.teacher import CheckpointTeacher, Teacher, freeze, read_teacher

__all__ = [
    "SECTIONS",
    "CheckpointTeacher",
    "DistillConfig",
    "DistillObjective",
    "FeatureAdapters",
    "InheritReport",
    "LossWeights",
    "OnnxTeacher",
    "Teacher",
    "channelwise_kd_loss",
    "distill",
    "feature_kd_loss",
    "freeze",
    "inherit_weights",
    "load_distill_recipe",
    "open_teacher",
    "pixel_kd_loss",
    "read_teacher",
    "relation_kd_loss",
    "resume_distill_recipe",
    "teacher_miou",
    "valid_pixels",
]
