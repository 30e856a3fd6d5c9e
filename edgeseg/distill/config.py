"""The ``distill:`` section of a distillation recipe (torch-free; read by ``edgeseg.config.load_recipe``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeseg.errors import InputError
from edgeseg.runtime.providers import PROVIDER_CHOICES

STUDENT_INITS = ("scratch", "teacher")
TEACHER_DECAYS = ("constant", "linear")
UNLABELLED_MODES = ("kd", "pseudo")
ONNX_SUFFIX = ".onnx"
CHECKPOINT_SUFFIXES = (".pt", ".pth")


@dataclass
class LossWeights:
    """Weight of each term of the distillation objective; a term with weight 0 is not computed.

    ``ce``: the trainer's label loss (``train.loss``); ``kd``: pixel-wise KD on logits; ``cwd``: channel-wise
    distillation on logits; ``feature``: feature distillation over ``feature_pairs``; ``relation``: DIST-style
    relation distillation on logits (Pearson correlation across classes and across pixels).
    """

    ce: float = 1.0
    kd: float = 1.0
    cwd: float = 0.0
    feature: float = 0.0
    relation: float = 0.0

    @property
    def uses_teacher(self) -> bool:
        """Whether any term that needs the teacher's outputs (KD, CWD, relation, feature) has a weight."""
        return self.kd > 0 or self.cwd > 0 or self.relation > 0 or self.feature > 0

    def __post_init__(self) -> None:
        for name in ("ce", "kd", "cwd", "feature", "relation"):
            if getattr(self, name) < 0:
                raise InputError(f"distill.weights.{name}: expected a number >= 0, got {getattr(self, name)}")


@dataclass
class DistillConfig:
    """Teacher → student distillation settings.

    ``teacher``: the teacher's edgeseg checkpoint, or an ONNX file (an edgeseg export or any model returning
    class scores N×C×h×w at the input size or lower) that runs in ONNX Runtime on ``teacher_provider``
    (``auto``, ``cpu``, ``cuda``, ``tensorrt``); ``teacher_recipe``: the recipe that trains it (for people).
    ``teacher_mean``/``teacher_std``: the normalization an ONNX teacher was trained with, needed when the
    file carries no edgeseg metadata (they override the file's when set); ``teacher_num_classes``: its class
    count, checked against the data's (0: read it from the file). An ONNX teacher serves the logit terms (KD,
    CWD, relation) only: feature KD and ``student_init: teacher`` need a checkpoint.
    ``kd_tau``/``cwd_tau``/``relation_tau``: temperatures of pixel-wise KD, channel-wise distillation and
    relation distillation. ``logit_stride``: the logit terms (KD, CWD, relation) compare both models' logits
    average-pooled over ``logit_stride``×``logit_stride`` windows (a window counts when all its pixels are
    valid) — set it to the student's output stride so that the student is not asked for detail finer than
    its logits can hold (a full-resolution U-Net teacher against a stride-8 head); 1 compares every pixel.
    ``feature_pairs``
    maps student feature names to teacher feature names (the models' ``feature_channels`` keys); each pair
    gets a 1×1-conv adapter that trains with the student and is dropped from the saved student.
    ``student_init``: ``scratch`` (the student's own initialisation, as ``edgeseg train`` builds it),
    ``teacher``: weight selection from the teacher (``edgeseg.distill.inherit``), for a student that is a
    narrower copy of the teacher's architecture (the same model at a smaller ``width_mult``); student
    depthwise-separable layers where the teacher has full k×k convolutions (``unet`` → ``unet_ds``, the
    DeepLabV3+ head) start from the convolutions' decomposition — or the path of another edgeseg checkpoint
    (``.pt``/``.pth``, same classes and normalization) to select from in the same way: a teacher assistant,
    a model between teacher and student in size, while the losses still use ``teacher``.
    ``unlabelled``: images without masks that join every training batch for the distillation terms only
    (:mod:`edgeseg.distill.unlabelled`): a folder, or ``synthetic`` (the recipe's generator, scenes of their
    own split); ``unlabelled_batch`` of them per step (0: ``data.batch_size``); ``unlabelled_count`` limits
    how many are used (0: all of the folder's, ``data.synthetic_train`` synthetic scenes).
    ``unlabelled_mode``: ``kd`` — the images join every step's batch and the teacher runs on them there,
    for the distillation terms (the teacher's scores on each augmented view; one teacher pass per image per
    step); ``pseudo`` — the teacher labels each image once, before training (the argmax of its scores on the
    whole image), and the images join the training set as labelled ones: the label loss trains on them,
    and the teacher need not run during training at all (every teacher weight may be 0).
    ``pseudo_threshold``: with ``pseudo``, pixels where the teacher's softmax probability of its class is
    below this are left unlabelled (``data.ignore_index``); 0 keeps every pixel.
    ``teacher_until``: the fraction of the run's steps during which the teacher terms count (1: all); after
    it the student trains on the label loss alone and the teacher no longer runs — early-stopped KD (Cho &
    Hariharan, 2019), for a student too small to follow the teacher to the end. ``teacher_decay``:
    ``constant`` keeps the teacher terms' weights until then, ``linear`` lowers them from full at the first
    step to 0 at ``teacher_until``.
    """

    teacher: str = ""
    teacher_recipe: str = ""
    teacher_mean: list[float] = field(default_factory=list)
    teacher_std: list[float] = field(default_factory=list)
    teacher_num_classes: int = 0
    teacher_provider: str = "auto"
    weights: LossWeights = field(default_factory=LossWeights)
    kd_tau: float = 1.0
    cwd_tau: float = 4.0
    relation_tau: float = 1.0
    logit_stride: int = 1
    feature_pairs: dict[str, str] = field(default_factory=dict)
    student_init: str = "scratch"
    unlabelled: str = ""
    unlabelled_batch: int = 0
    unlabelled_count: int = 0
    unlabelled_mode: str = "kd"
    pseudo_threshold: float = 0.0
    teacher_until: float = 1.0
    teacher_decay: str = "constant"

    def teacher_scale(self, progress: float) -> float:
        """The factor on the teacher terms' weights at ``progress`` (fraction of the run's steps done)."""
        if progress >= self.teacher_until:
            return 0.0
        if self.teacher_decay == "linear":
            return 1.0 - progress / self.teacher_until
        return 1.0

    def __post_init__(self) -> None:
        init = self.student_init
        if init not in STUDENT_INITS and not init.lower().endswith(CHECKPOINT_SUFFIXES):
            raise InputError(
                f"distill.student_init: expected one of {list(STUDENT_INITS)} or an edgeseg checkpoint "
                f"({' or '.join(CHECKPOINT_SUFFIXES)}), got {self.student_init!r}"
            )
        for name in ("kd_tau", "cwd_tau", "relation_tau"):
            if getattr(self, name) <= 0:
                raise InputError(f"distill.{name}: expected a temperature > 0, got {getattr(self, name)}")
        stride = self.logit_stride
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise InputError(f"distill.logit_stride: expected an integer >= 1, got {self.logit_stride!r}")
        for name in ("teacher_mean", "teacher_std"):
            values = getattr(self, name)
            if values and (len(values) != 3 or not all(isinstance(v, int | float) for v in values)):
                raise InputError(f"distill.{name}: expected 3 numbers (R, G, B), got {values!r}")
        if any(v <= 0 for v in self.teacher_std):
            raise InputError(f"distill.teacher_std: expected numbers > 0, got {self.teacher_std}")
        if self.teacher_provider.lower() not in PROVIDER_CHOICES:
            raise InputError(
                f"distill.teacher_provider: expected one of {list(PROVIDER_CHOICES)}, "
                f"got {self.teacher_provider!r}"
            )
        count = self.teacher_num_classes
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InputError(f"distill.teacher_num_classes: expected an integer >= 0, got {count!r}")
        if self.teacher.lower().endswith(ONNX_SUFFIX):
            if self.weights.feature > 0:
                raise InputError(
                    f"distill.weights.feature > 0 needs a PyTorch teacher checkpoint; {self.teacher} is an "
                    "ONNX file, which gives logits only (set distill.weights.feature=0)"
                )
            if self.student_init == "teacher":
                raise InputError(
                    f"distill.student_init=teacher needs a PyTorch teacher checkpoint; {self.teacher} is an "
                    "ONNX file (set distill.student_init=scratch)"
                )
        until = self.teacher_until
        if isinstance(until, bool) or not isinstance(until, int | float) or not 0 < until <= 1:
            raise InputError(f"distill.teacher_until: expected a fraction in (0, 1], got {until!r}")
        if self.teacher_decay not in TEACHER_DECAYS:
            raise InputError(
                f"distill.teacher_decay: expected one of {list(TEACHER_DECAYS)}, got {self.teacher_decay!r}"
            )
        for name in ("unlabelled_batch", "unlabelled_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"distill.{name}: expected an integer >= 0, got {value!r}")
        if self.unlabelled_mode not in UNLABELLED_MODES:
            raise InputError(
                f"distill.unlabelled_mode: expected one of {list(UNLABELLED_MODES)}, "
                f"got {self.unlabelled_mode!r}"
            )
        threshold = self.pseudo_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold < 1:
            raise InputError(f"distill.pseudo_threshold: expected a probability in [0, 1), got {threshold!r}")
        if threshold and self.unlabelled_mode != "pseudo":
            raise InputError(
                f"distill.pseudo_threshold={threshold} applies to unlabelled_mode=pseudo, "
                f"not {self.unlabelled_mode}"
            )
        if self.unlabelled_mode == "pseudo":
            if not self.unlabelled:
                raise InputError(
                    "distill.unlabelled_mode=pseudo labels the images of distill.unlabelled, which is not set"
                )
            if self.unlabelled_batch:
                raise InputError(
                    f"distill.unlabelled_batch={self.unlabelled_batch} applies to unlabelled_mode=kd; with "
                    "pseudo the images join the training set and come in data.batch_size batches"
                )
        elif self.unlabelled and not self.weights.uses_teacher:
            raise InputError(
                "distill.unlabelled: unlabelled images only serve the distillation terms, and every one of "
                "distill.weights kd, cwd, relation and feature is 0 (or set distill.unlabelled_mode=pseudo "
                "to train on the teacher's labels of them)"
            )
        if self.weights.feature > 0 and not self.feature_pairs:
            raise InputError(
                "distill.weights.feature > 0 needs distill.feature_pairs {student_name: teacher_name}"
            )
