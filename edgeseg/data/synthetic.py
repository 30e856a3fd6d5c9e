"""The built-in ``synthetic`` dataset: procedurally drawn scenes, generated on the fly from a seed.

Each scene is a smooth, randomly coloured background with clutter (strokes, specks and small textured
patches, all labelled background), then 3-5 objects drawn in turn so that later ones occlude earlier ones,
a stroke or none over everything, an illumination gradient and pixel noise. An object's class is a pair
(shape, texture), and every colour is random, so colour says nothing about the class:

===================  ========  =======
class                shape     texture
===================  ========  =======
``disc_stripes``     disc      stripes
``square_stripes``   square    stripes
``disc_checks``      disc      checks
``triangle_checks``  triangle  checks
``triangle_dots``    triangle  dots
``ring``             annulus   smooth
``bar``              bar       smooth
===================  ========  =======

Texture alone tells some classes apart within a few pixels; others share a texture and differ only in
shape (striped disc vs striped square, checked disc vs checked triangle, ring vs bar), so a pixel deep
inside such an object needs context from its outline, up to an object's diameter (28-56 pixels at
128x128). Sizes and strokes scale with the image, so the scene distribution is the same at every
resolution; texture periods scale too but stop shrinking below 96 pixels, so they stay resolvable.
Sample ``i`` of a split is a pure function of ``(seed, split, i)``.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable

import numpy as np

from edgeseg.data.datasets import SegDataset
from edgeseg.errors import InputError
from edgeseg.runtime.metadata import IGNORE_INDEX

SYNTHETIC_CLASSES = [
    "background", "disc_stripes", "square_stripes", "disc_checks", "triangle_checks", "triangle_dots", "ring",
    "bar",
]  # fmt: skip
SYNTHETIC_PALETTE = [
    [0, 0, 0], [230, 25, 75], [255, 225, 25], [60, 180, 75], [245, 130, 48], [0, 130, 200], [145, 30, 180],
    [70, 240, 240],
]  # fmt: skip
_KINDS = {
    1: ("disc", "stripes"),
    2: ("square", "stripes"),
    3: ("disc", "checks"),
    4: ("triangle", "checks"),
    5: ("triangle", "dots"),
    6: ("ring", "smooth"),
    7: ("bar", "smooth"),
}
SYNTHETIC_VARIANTS = ("standard", "capacity")
"""``standard``: the scenes described above; ``capacity``: :mod:`edgeseg.data.synthetic_capacity`."""
SceneGenerator = Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]]
_BASE = 128.0  # sizes below are in pixels of a 128-pixel image and scale with the image
_MIN_TEXTURE_SCALE = 0.75  # below 96 pixels textures stop shrinking, so they stay above the pixel grid


@functools.lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) as read-only float32 arrays, cached per size."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _colour_pair(rng: np.random.Generator, min_contrast: float = 80.0) -> tuple[np.ndarray, np.ndarray]:
    """Two random RGB colours whose luminances differ by ``min_contrast`` or more, so a texture shows."""
    first = rng.uniform(15, 240, 3)
    candidates = rng.uniform(15, 240, (8, 3))
    lum = np.array([0.299, 0.587, 0.114])
    ok = np.abs((candidates - first) @ lum) >= min_contrast
    second = candidates[int(np.argmax(ok))] if ok.any() else 255.0 - first
    return first.astype(np.float32), second.astype(np.float32)


def _texture(
    kind: str, rng: np.random.Generator, u: np.ndarray, v: np.ndarray, unit: float, fineness: float = 1.0
) -> np.ndarray:
    """Weight of the second colour (0..1) at object coordinates (u, v) for texture ``kind``.

    ``fineness`` divides the texture periods (1: the standard setting's periods).
    """
    unit = max(unit, _MIN_TEXTURE_SCALE) / fineness
    angle = rng.uniform(0, np.pi)
    p = u * np.cos(angle) + v * np.sin(angle)
    q = v * np.cos(angle) - u * np.sin(angle)
    if kind == "stripes":
        period = rng.uniform(6, 10) * unit
        return (((p / period + rng.random()) % 1.0) < 0.5).astype(np.float32)
    if kind == "checks":
        period = rng.uniform(5, 9) * unit
        cells = np.floor(p / period + rng.random()) + np.floor(q / period + rng.random())
        return (cells % 2).astype(np.float32)
    if kind == "dots":
        period = rng.uniform(7, 10) * unit
        du = (p / period + rng.random()) % 1.0 - 0.5
        dv = (q / period + rng.random()) % 1.0 - 0.5
        return (du * du + dv * dv < 0.33**2).astype(np.float32)
    span = float(np.abs(p).max(initial=1.0))
    return np.clip(0.5 + 0.25 * p / span, 0.0, 1.0)  # smooth: a gentle shading between close colours


def _shape(
    kind: str, rng: np.random.Generator, u: np.ndarray, v: np.ndarray, r: float, unit: float
) -> np.ndarray:
    """Boolean mask of shape ``kind`` with size ``r`` at object coordinates (u, v)."""
    if kind == "disc":
        return u * u + v * v <= r * r
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.82 * r
    if kind == "triangle":
        inside = np.ones(u.shape, dtype=bool)
        for k in range(3):
            a = np.pi / 2 + 2 * np.pi * k / 3
            inside &= u * np.cos(a) + v * np.sin(a) <= 0.65 * r
        return inside
    if kind == "ring":
        thickness = max(4.0 * unit, rng.uniform(0.3, 0.45) * r)
        d2 = u * u + v * v
        return (d2 <= r * r) & (d2 >= (r - thickness) ** 2)
    half_width = max(3.0 * unit, rng.uniform(0.22, 0.32) * r)  # bar
    return (np.abs(u) <= 1.4 * r) & (np.abs(v) <= half_width)


def _window(cy: float, cx: float, extent: float, height: int, width: int) -> tuple[slice, slice] | None:
    """Slices of the image covering a square of half-side ``extent`` around (cy, cx); None if outside."""
    y0, y1 = max(0, int(cy - extent)), min(height, int(cy + extent) + 2)
    x0, x1 = max(0, int(cx - extent)), min(width, int(cx + extent) + 2)
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth colour field: a 3x3 grid of random colours, interpolated bilinearly (float32 H×W×3)."""
    corners = rng.uniform(30, 225, (3, 3, 3)).astype(np.float32)
    wy = np.maximum(
        0.0,
        1.0 - np.abs(np.linspace(0, 2, height, dtype=np.float32)[:, None] - np.arange(3, dtype=np.float32)),
    )
    wx = np.maximum(
        0.0,
        1.0 - np.abs(np.linspace(0, 2, width, dtype=np.float32)[:, None] - np.arange(3, dtype=np.float32)),
    )
    rows = np.tensordot(wy, corners, axes=1)  # H×3(x knots)×3(rgb)
    field = rows[:, None, 0, :] * wx[None, :, 0, None]
    for j in (1, 2):
        field += rows[:, None, j, :] * wx[None, :, j, None]
    return field


def _segment(
    rng: np.random.Generator,
    shape: tuple[int, int],
    length: tuple[float, float],
    half: tuple[float, float],
    unit: float,
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray, float] | None:
    """Draw a random straight band: its length a ``length`` share of the shorter side, its half-width ``half``
    times ``unit`` pixels (both ranges). Returns (window, position along the band 0..1, pixels within the
    band, length), or None when it misses the image."""
    height, width = shape
    y0, x0 = rng.uniform(0, height), rng.uniform(0, width)
    size, angle = rng.uniform(*length) * min(height, width), rng.uniform(0, 2 * np.pi)
    dy, dx = np.sin(angle) * size, np.cos(angle) * size
    radius = rng.uniform(*half) * unit
    win = _window(y0 + dy / 2, x0 + dx / 2, size / 2 + radius, height, width)
    if win is None:
        return None
    yy, xx = _grid(height, width)
    py, px = yy[win] - y0, xx[win] - x0
    t = np.clip((py * dy + px * dx) / (size * size), 0.0, 1.0)
    return win, t, (py - t * dy) ** 2 + (px - t * dx) ** 2 <= radius * radius, size


def _stroke(rng: np.random.Generator, image: np.ndarray, label: np.ndarray, unit: float) -> None:
    """Draw a straight stroke of random colour and width, labelled background."""
    band = _segment(rng, label.shape, (0.1, 0.5), (0.6, 1.4), unit)
    if band is None:
        return
    win, _, on, _ = band
    image[win][on] = rng.uniform(0, 255, 3)
    label[win][on] = 0


def _speck(rng: np.random.Generator, image: np.ndarray, label: np.ndarray, unit: float) -> None:
    """Draw a small blob, or a small striped/checked patch too small to be an object; labelled background."""
    height, width = label.shape
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    size = rng.uniform(2.0, 5.0) * unit
    win = _window(cy, cx, size, height, width)
    if win is None:
        return
    yy, xx = _grid(height, width)
    u, v = xx[win] - cx, yy[win] - cy
    if rng.random() < 0.7:
        on = u * u + v * v <= size * size
        image[win][on] = rng.uniform(0, 255, 3)
    else:
        on = np.maximum(np.abs(u), np.abs(v)) <= size
        weight = _texture("stripes" if rng.random() < 0.5 else "checks", rng, u[on], v[on], unit)
        first, second = _colour_pair(rng)
        image[win][on] = first + weight[:, None] * (second - first)
    label[win][on] = 0


def _object(
    rng: np.random.Generator,
    image: np.ndarray,
    label: np.ndarray,
    unit: float,
    cls: int | None = None,
    centre: tuple[float, float] = (0.05, 0.95),
) -> None:
    """Draw one object over ``image`` and write its class into ``label``: class ``cls`` (random if None),
    its centre anywhere in the ``centre`` range of each side (fractions of the image's height and width)."""
    height, width = label.shape
    if cls is None:
        cls = int(rng.integers(1, len(SYNTHETIC_CLASSES)))
    shape, texture = _KINDS[cls]
    r = rng.uniform(14.0, 28.0) * unit
    cy, cx = rng.uniform(*centre) * height, rng.uniform(*centre) * width
    win = _window(cy, cx, 1.45 * r, height, width)
    if win is None:
        return
    yy, xx = _grid(height, width)
    theta = rng.uniform(0, 2 * np.pi)
    dy, dx = yy[win] - cy, xx[win] - cx
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = dy * np.cos(theta) - dx * np.sin(theta)
    on = _shape(shape, rng, u, v, r, unit)
    first, second = _colour_pair(rng)
    if texture == "smooth":
        second = np.clip(first + rng.uniform(-40, 40, 3), 0, 255).astype(np.float32)
    weight = _texture(texture, rng, u[on], v[on], unit)
    image[win][on] = first + weight[:, None] * (second - first)
    label[win][on] = cls


def generate_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one scene with ``rng``: return (image uint8 H×W×3 RGB, mask int64 H×W)."""
    unit = min(height, width) / _BASE
    image = _background(rng, height, width)
    label = np.zeros((height, width), dtype=np.int64)
    for _ in range(rng.integers(1, 4)):
        _stroke(rng, image, label, unit)
    for _ in range(rng.integers(1, 5)):
        _speck(rng, image, label, unit)
    for _ in range(rng.integers(3, 6)):
        _object(rng, image, label, unit)
    for _ in range(rng.integers(0, 2)):
        _stroke(rng, image, label, unit)
    return _light_and_noise(rng, image), label


def generate_object(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """Draw an object crop with ``rng``: one object of class ``cls`` (1..7) near the middle of a ``size``
    square, drawn as in a scene of twice that size (so it fills a third to two thirds of the crop), over the
    scenes' background clutter, with at most one stroke across it. Returns uint8 H×W×3 RGB."""
    unit = 2 * size / _BASE
    image = _background(rng, size, size)
    label = np.zeros((size, size), dtype=np.int64)
    for _ in range(rng.integers(1, 3)):
        _stroke(rng, image, label, unit)
    for _ in range(rng.integers(1, 4)):
        _speck(rng, image, label, unit)
    _object(rng, image, label, unit, cls=cls, centre=(0.4, 0.6))
    for _ in range(rng.integers(0, 2)):
        _stroke(rng, image, label, unit)
    return _light_and_noise(rng, image)


def _light_and_noise(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Illumination gradient and pixel noise over a float H×W×3 image; returns it as uint8."""
    height, width = image.shape[:2]
    gy, gx = rng.uniform(-0.25, 0.25, 2)
    gain_y = 1.0 + gy * np.linspace(-0.5, 0.5, height, dtype=np.float32)
    gain_x = gx * np.linspace(-0.5, 0.5, width, dtype=np.float32)
    image *= (gain_y[:, None] + gain_x[None, :])[..., None]
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= rng.uniform(2.0, 5.0)
    image += noise
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8)


def synthetic_variant(name: str) -> tuple[list[str], list[list[int]], SceneGenerator]:
    """(classes, palette, scene generator) of the synthetic setting ``name`` (one of SYNTHETIC_VARIANTS)."""
    if name == "standard":
        return SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, generate_scene
    if name == "capacity":
        from edgeseg.data import synthetic_capacity as capacity

        return capacity.CAPACITY_CLASSES, capacity.CAPACITY_PALETTE, capacity.generate_capacity_scene
    raise InputError(f"data.synthetic_variant: expected one of {', '.join(SYNTHETIC_VARIANTS)}, got {name!r}")


class SyntheticSegDataset(SegDataset):
    """The built-in synthetic dataset: ``num_samples`` scenes of ``size`` pixels, drawn on demand.

    ``variant`` picks the setting (``SYNTHETIC_VARIANTS``): its classes and how scenes are drawn.

    ``size`` is a side or ``(height, width)``. Sample ``i`` of ``split`` depends only on ``(seed, split, i)``,
    so workers, reruns and machines agree; different splits draw different scenes.
    """

    def __init__(
        self,
        split: str = "train",
        num_samples: int = 2000,
        size: int | tuple[int, int] = 128,
        seed: int = 0,
        ignore_index: int = IGNORE_INDEX,
        num_classes: int | None = None,
        variant: str = "standard",
    ) -> None:
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        classes, palette, self._generate = synthetic_variant(variant)
        if min(height, width) < 32:
            raise InputError(f"synthetic image size must be at least 32 pixels, got {height}x{width}")
        if num_samples < 1:
            raise InputError(f"synthetic split {split!r} needs at least one sample, got {num_samples}")
        if num_classes is not None and num_classes != len(classes):
            raise InputError(
                f"data.num_classes is {num_classes} but the synthetic dataset has {len(classes)} classes "
                f"({variant} setting)"
            )
        self.root = "synthetic"
        self.split = split
        self.layout = "synthetic"
        self.variant = variant
        self.classes = list(classes)
        self.palette = [list(c) for c in palette]
        self.ignore_index = ignore_index
        self.fixed_size = (height, width)
        self.seed = seed
        self.ids = range(num_samples)
        self._split_key = zlib.crc32(split.encode("utf-8"))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        index = self._index(index)
        rng = np.random.default_rng([self.seed, self._split_key, index])
        return self._generate(rng, *self.fixed_size)
