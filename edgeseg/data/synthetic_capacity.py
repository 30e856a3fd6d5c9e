"""The ``capacity`` setting of the built-in synthetic dataset: scenes where model capacity sets the mIoU.

The standard setting (:mod:`edgeseg.data.synthetic`) is learned by a small student given enough epochs, so a
teacher–student gap measured on it is training time. This setting makes each object pixel's label a
conjunction of cues that a small network has to hold at once, so a wider, deeper network keeps an edge
after both have stopped improving:

- **Classes told apart only by a conjunction.** The 9 object classes are every pair of 3 shapes × 3
  textures, so neither the outline nor the texture alone names the class (the standard setting has 7
  pairs, several decided by texture alone). Decoys make both cues necessary for *foreground* too: textured
  crosses (the same three textures) and untextured discs, squares and triangles are background.
- **Fine, low-contrast texture.** Texture periods are 0.7 of the standard setting's (3-7 px at 128 px) and
  the two colours of a texture differ by only 40 in luminance, under pixel noise: telling stripes from
  checks from dots needs several filters at full resolution.
- **Context from the outline.** A pixel deep inside an object sees only texture; its shape, hence its
  class, is known from the outline up to an object's diameter away.
- **Scale variation.** Object radii are log-uniform over 8-34 px at 128 px (the standard setting:
  14-28), so the same class appears at four times the size, and small objects carry few texture periods.
- **Occlusion.** 5-8 objects and decoys drawn in turn, later ones over earlier ones, then 1-2 solid strokes
  over everything: outlines arrive broken and a shape must be inferred from what is left of it.
- **Thin structures.** ``wire``: a dashed line 1.5-2.5 px wide; solid strokes of the same width are
  background, so a wire is told from clutter only by its dash pattern along a 2-pixel structure.

Sizes scale with the image as in the standard setting. Sample ``i`` of a split is a pure function of
``(seed, split, i)``.
"""

from __future__ import annotations

import numpy as np

from edgeseg.data.synthetic import (
    _BASE,
    _background,
    _colour_pair,
    _grid,
    _light_and_noise,
    _segment,
    _shape,
    _speck,
    _stroke,
    _texture,
    _window,
)

_SHAPES = ("disc", "square", "triangle")
_TEXTURES = ("stripes", "checks", "dots")
CAPACITY_CLASSES = [
    "background",
    *(f"{shape}_{texture}" for shape in _SHAPES for texture in _TEXTURES),
    "wire",
]
CAPACITY_PALETTE = [
    [0, 0, 0], [230, 25, 75], [255, 225, 25], [60, 180, 75], [245, 130, 48], [0, 130, 200], [145, 30, 180],
    [70, 240, 240], [240, 50, 230], [210, 245, 60], [255, 255, 255],
]  # fmt: skip
_WIRE = len(CAPACITY_CLASSES) - 1
_FINENESS = 1 / 0.7  # texture periods are 0.7 of the standard setting's
_MIN_CONTRAST = 40.0  # luminance difference of a texture's two colours (standard setting: 80)
_RADIUS = (8.0, 34.0)  # object radius range, log-uniform, in pixels of a 128-pixel image
_DECOY_SHARE = 0.3  # share of drawn regions that are background decoys


def _place(rng: np.random.Generator, height: int, width: int, r: float):
    """Window, rotated object coordinates (u, v) for a region of radius ``r`` at a random place; or None."""
    cy, cx = rng.uniform(0.05, 0.95) * height, rng.uniform(0.05, 0.95) * width
    win = _window(cy, cx, 1.45 * r, height, width)
    if win is None:
        return None
    yy, xx = _grid(height, width)
    theta = rng.uniform(0, 2 * np.pi)
    dy, dx = yy[win] - cy, xx[win] - cx
    return win, dx * np.cos(theta) + dy * np.sin(theta), dy * np.cos(theta) - dx * np.sin(theta)


def _region(rng: np.random.Generator, image: np.ndarray, label: np.ndarray, unit: float) -> None:
    """Draw an object of one of the 9 classes or, with probability ``_DECOY_SHARE``, a background decoy."""
    height, width = label.shape
    r = float(np.exp(rng.uniform(np.log(_RADIUS[0]), np.log(_RADIUS[1])))) * unit
    placed = _place(rng, height, width, r)
    if placed is None:
        return
    win, u, v = placed
    shape_i, texture_i = int(rng.integers(len(_SHAPES))), int(rng.integers(len(_TEXTURES)))
    cls = 1 + shape_i * len(_TEXTURES) + texture_i
    decoy = rng.random() < _DECOY_SHARE
    textured = True
    if decoy and rng.random() < 0.5:  # a textured cross: the texture of an object, not its outline
        arm = 0.3 * r
        on = ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))
    else:
        on = _shape(_SHAPES[shape_i], rng, u, v, r, unit)
        textured = not decoy  # an untextured shape: the outline of an object, not its texture
    first, second = _colour_pair(rng, _MIN_CONTRAST)
    if textured:
        weight = _texture(_TEXTURES[texture_i], rng, u[on], v[on], unit, _FINENESS)
    else:
        span = float(np.abs(u).max(initial=1.0))
        weight = np.clip(0.5 + 0.25 * u[on] / span, 0.0, 1.0)  # a gentle shading, like the smooth classes
        second = np.clip(first + rng.uniform(-40, 40, 3), 0, 255).astype(np.float32)
    image[win][on] = first + weight[:, None] * (second - first)
    label[win][on] = 0 if decoy else cls


def _wire(rng: np.random.Generator, image: np.ndarray, label: np.ndarray, unit: float) -> None:
    """Draw a dashed straight line about 2 pixels wide, labelled ``wire`` where it is drawn."""
    band = _segment(rng, label.shape, (0.3, 0.8), (0.75, 1.25), unit)
    if band is None:
        return
    win, t, near, length = band
    period = rng.uniform(5.0, 8.0) * unit / length  # dash period along the line, as a fraction of it
    dashed = ((t / period + rng.random()) % 1.0) < 0.55
    on = near & dashed
    image[win][on] = rng.uniform(0, 255, 3)
    label[win][on] = _WIRE


def generate_capacity_scene(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one ``capacity`` scene with ``rng``: return (image uint8 H×W×3 RGB, mask int64 H×W)."""
    unit = min(height, width) / _BASE
    image = _background(rng, height, width)
    label = np.zeros((height, width), dtype=np.int64)
    for _ in range(rng.integers(1, 4)):
        _stroke(rng, image, label, unit)
    for _ in range(rng.integers(1, 5)):
        _speck(rng, image, label, unit)
    for _ in range(rng.integers(5, 9)):
        _region(rng, image, label, unit)
    for _ in range(rng.integers(1, 3)):
        _wire(rng, image, label, unit)
    for _ in range(rng.integers(1, 3)):
        _stroke(rng, image, label, unit)
    return _light_and_noise(rng, image), label
