"""Settings for datasets and augmentation, nested under ``data:`` and ``augment:`` in recipes.

Plain dataclasses: every field has a default, so an empty section is valid. Values are checked in
``__post_init__`` and a bad one raises :class:`~edgeseg.errors.InputError` naming the key, so a typo in a
recipe or a ``--set`` override stops before any data is read. Two-number ranges may be given as YAML lists;
they are stored as tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from edgeseg.errors import InputError
from edgeseg.runtime.metadata import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD

SYNTHETIC = "synthetic"


def _range(section: str, name: str, value: Sequence[float], low: float, high: float) -> tuple[float, float]:
    """Return ``value`` as a ``(lo, hi)`` tuple with ``low <= lo <= hi <= high``, else raise InputError."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{section}.{name}: expected two numbers [low, high], got {value!r}") from None
    if not low <= lo <= hi <= high:
        raise InputError(f"{section}.{name}: expected {low} <= low <= high <= {high}, got [{lo}, {hi}]")
    return lo, hi


def _check(section: str, name: str, value: object, low: float, high: float) -> None:
    """Raise InputError unless ``value`` is a number with ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InputError(f"{section}.{name}: expected a number in [{low}, {high}], got {value!r}")


def _check_int(name: str, value: object, low: int, optional: bool = False) -> None:
    """Raise InputError unless ``value`` is an integer ``>= low`` (or None when ``optional``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        allowed = " or null" if optional else ""
        raise InputError(f"data.{name}: expected an integer >= {low}{allowed}, got {value!r}")


def _channels(name: str, value: object, positive: bool) -> list[float]:
    """``value`` as three floats (R, G, B), all > 0 when ``positive``, else raise InputError."""
    try:
        numbers = [float(v) for v in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 3 or (positive and min(numbers) <= 0):
        kind = "three positive numbers" if positive else "three numbers"
        raise InputError(f"data.{name}: expected {kind} [r, g, b] for RGB in [0, 1], got {value!r}")
    return numbers


@dataclass
class DataConfig:
    """Where the data comes from and how it is batched.

    ``root`` is ``"synthetic"`` (the built-in generator) or a folder whose layout (Pascal-VOC, Cityscapes,
    or generic ``images/`` + ``masks/``) is detected. ``crop_size`` is the side of the square training crops:
    training images are (optionally resized, then) randomly cropped, and padded where smaller, to it.
    Validation uses whole images; ``resize`` (shorter side, in pixels) applies to both. ``mean`` and ``std``
    normalize RGB scaled to [0, 1] before it reaches the network; the model keeps them (checkpoint, ONNX
    metadata), so every later step normalizes as training did.
    """

    root: str = SYNTHETIC
    train_split: str = "train"
    val_split: str = "val"
    crop_size: int = 128
    resize: int | None = None
    batch_size: int = 8
    val_batch_size: int | None = None
    """None: ``batch_size`` when all images share one size (synthetic), else 1."""
    workers: int = 0
    split_ratio: float = 0.8
    """Generic layout without ``train/``/``val/`` subfolders: the share of pairs that go to train."""
    split_seed: int = 0
    num_classes: int | None = None
    """None: taken from the dataset (``classes.txt`` or the layout's defaults); else must agree with it."""
    ignore_index: int = IGNORE_INDEX
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    synthetic_train: int = 2000
    """Number of samples in the synthetic ``train`` split (other splits use ``synthetic_val``)."""
    synthetic_val: int = 200
    synthetic_size: int = 128
    """Side of the square synthetic images, in pixels."""
    synthetic_seed: int = 0
    synthetic_variant: str = "standard"
    """``standard`` or ``capacity`` (harder scenes where model capacity sets the mIoU; 11 classes)."""

    def __post_init__(self) -> None:
        if not isinstance(self.root, str) or not self.root:
            raise InputError(f"data.root: expected 'synthetic' or a folder path, got {self.root!r}")
        for name in ("crop_size", "batch_size", "synthetic_train", "synthetic_val"):
            _check_int(name, getattr(self, name), 1)
        for name in ("resize", "val_batch_size", "num_classes"):
            _check_int(name, getattr(self, name), 1, optional=True)
        _check_int("synthetic_size", self.synthetic_size, 32)
        _check_int("workers", self.workers, 0)
        _check_int("split_seed", self.split_seed, 0)
        _check_int("synthetic_seed", self.synthetic_seed, 0)
        for name in ("train_split", "val_split"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InputError(f"data.{name}: expected a split name such as 'train', got {value!r}")
        _check("data", "split_ratio", self.split_ratio, 0.0, 1.0)
        _check_int("ignore_index", self.ignore_index, 0)
        if self.ignore_index > 255:
            raise InputError(f"data.ignore_index: expected a value in [0, 255], got {self.ignore_index!r}")
        self.mean = _channels("mean", self.mean, positive=False)
        self.std = _channels("std", self.std, positive=True)


@dataclass
class AugmentConfig:
    """Joint image+mask augmentation for training; every part is off when its strength or probability is 0.

    Colour jitter touches the image only. Geometric parts warp image and mask together (masks with nearest
    interpolation); pixels that come from outside the image become ``ignore_index`` in the mask. ``scale``
    zooms each sample about a random point at a fixed output size: above 1 it crops, below 1 it pads.
    CutMix and MixUp are applied per batch after the rest, each with its own probability.
    """

    enabled: bool = True
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 0.03
    """Fraction of the hue circle, at most 0.5."""
    color_prob: float = 0.8
    scale: tuple[float, float] = (0.5, 2.0)
    """Random scale range for scale-and-crop; (1, 1) turns it off."""
    scale_prob: float = 0.5
    hflip_prob: float = 0.5
    rotation: float = 0.0
    """Largest rotation, in degrees (0: off)."""
    rotation_prob: float = 0.5
    affine_scale: tuple[float, float] = (1.0, 1.0)
    affine_shear: float = 0.0
    """Largest shear, in degrees."""
    affine_translate: float = 0.0
    """Largest translation, as a fraction of the image size."""
    affine_prob: float = 0.5
    cutmix_prob: float = 0.0
    cutmix_alpha: float = 1.0
    mixup_prob: float = 0.0
    mixup_alpha: float = 0.4

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            _check("augment", name, getattr(self, name), 0.0, 1.0)
        _check("augment", "hue", self.hue, 0.0, 0.5)
        _check("augment", "rotation", self.rotation, 0.0, 180.0)
        _check("augment", "affine_shear", self.affine_shear, 0.0, 45.0)
        _check("augment", "affine_translate", self.affine_translate, 0.0, 0.5)
        for name in ("color_prob", "scale_prob", "hflip_prob", "rotation_prob", "affine_prob"):
            _check("augment", name, getattr(self, name), 0.0, 1.0)
        for name in ("cutmix_prob", "mixup_prob"):
            _check("augment", name, getattr(self, name), 0.0, 1.0)
        for name in ("cutmix_alpha", "mixup_alpha"):
            _check("augment", name, getattr(self, name), 1e-3, 1e3)
        self.scale = _range("augment", "scale", self.scale, 0.05, 20.0)
        self.affine_scale = _range("augment", "affine_scale", self.affine_scale, 0.05, 20.0)
