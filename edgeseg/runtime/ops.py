"""Numpy kernels of the runtime: normalization, argmax, resizing; vectorised and torch-free.

The normalization performs exactly the float32 operations of training, ``(x / 255 - mean) / std``, so an image
fed through the runtime reaches the network bit for bit as it does in PyTorch. :func:`upsample_argmax` gives
the labels of bilinearly upsampled scores without building the full-resolution scores (for models exported
with ``coarse=True``, whose graph stops before the final upsampling).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence

import numpy as np

_255 = np.float32(255)


def channel_vector(values: Sequence[float], name: str) -> np.ndarray:
    """Per-channel constants (mean or std) as a float32 (3, 1, 1) array ready to broadcast over C×H×W."""
    arr = np.asarray(values, dtype=np.float32)
    if arr.shape != (3,):
        raise ValueError(f"{name} must have 3 values (RGB), got {values!r}")
    return arr.reshape(3, 1, 1)


def normalize_into(image: np.ndarray, out: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """Write ``(image / 255 - mean) / std`` of an H×W×3 uint8 image into ``out`` (a 3×H×W float32 view).

    ``out`` may be a window of a larger (padded) buffer. The channel-first copy of the uint8 image is made
    first because reading a contiguous array is faster than three strided passes over the interleaved pixels.
    """
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    np.divide(chw, _255, out=out)
    np.subtract(out, mean, out=out)
    np.divide(out, std, out=out)


def normalized_batch(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """An H×W×3 uint8 image as a new normalized float32 1×3×H×W batch (:func:`normalize_into`)."""
    out = np.empty((1, 3, *image.shape[:2]), dtype=np.float32)
    normalize_into(image, out[0], channel_vector(mean, "mean"), channel_vector(std, "std"))
    return out


def argmax_labels(scores: np.ndarray) -> np.ndarray:
    """Class index of the highest score per pixel of a C×H×W array, as an H×W uint8 map (uint16 above 256).

    Ties go to the lowest class index, as in ``numpy.argmax`` and ``torch.argmax``. ``numpy.argmax`` over the
    leading axis first transposes the whole score volume; this pass keeps to contiguous class planes: a
    vectorised max over classes, then per class a branch-free update ``label += (c - label) * (score == max)``
    visited from the last class to the first so that the lowest index wins.
    """
    num_classes = scores.shape[0]
    if num_classes > 256:
        return np.argmax(scores, axis=0).astype(np.uint16)
    best = np.max(scores, axis=0)
    labels = np.zeros(best.shape, dtype=np.uint8)
    hit = np.empty(best.shape, dtype=bool)
    hit_u8 = hit.view(np.uint8)
    step = np.empty(best.shape, dtype=np.uint8)
    for c in range(num_classes - 1, -1, -1):
        np.equal(scores[c], best, out=hit)
        np.subtract(np.uint8(c), labels, out=step)
        np.multiply(step, hit_u8, out=step)
        np.add(labels, step, out=labels)
    return labels


class Scratch:
    """The work buffers and index tables of :func:`upsample_argmax`, kept between calls for one layout
    (classes, coarse height and width, factor) and rebuilt when it changes. Fresh arrays of a megabyte or
    more come from ``mmap`` and cost a page fault per 4 KiB on first touch; reuse keeps that off every image.
    """

    def __init__(self) -> None:
        self._layout: tuple[int, int, int, int] | None = None
        self._workspace: _Workspace | None = None

    def workspace(self, layout: tuple[int, int, int, int]) -> _Workspace:
        if self._workspace is None or self._layout != layout:
            self._layout, self._workspace = layout, _Workspace(*layout)
        return self._workspace


# Codes of the clear-winner test: _CODE * (number of classes near the best) + the sum of their indices, so a
# code below 2 * _CODE names the one class that beats every other by the margin (indices stay below _CODE).
_CODE = 256
_CHUNK = 1 << 18  # class scores interpolated at once in cells with three candidate classes or more


def upsample_argmax(scores: np.ndarray, factor: int, scratch: Scratch | None = None) -> np.ndarray:
    """Labels of ``scores`` (C×h×w) upsampled bilinearly by an integer ``factor``, without upsampling them.

    The argmax over classes (ties to the lowest index) of PyTorch's ``interpolate(scale_factor=factor,
    mode="bilinear", align_corners=False)``, as an (h·factor)×(w·factor) uint8 map: a view of a buffer of
    ``scratch``, valid until the next call with the same scratch (copy it to keep it). Scores are taken as
    float32; above 256 classes it falls back to ``argmax_labels(resize_bilinear(...))`` (uint16 labels).

    Every output pixel is a convex combination of the four coarse pixels around it (its cell's corners), with
    weights fixed by its place in the cell. Where one class beats every other at all four corners by a margin
    no rounding can bridge (1e-5 of the largest score), it wins in the whole cell, whose factor × factor
    pixels take it at once. In the other cells (on class boundaries) a class below one of two reference
    classes (the smallest and the largest class winning a corner) at all four corners wins nowhere; where only
    the references remain, the sign of their interpolated difference (one small matrix product) gives the
    label, elsewhere every class is interpolated. A pixel whose two best classes are within float32 rounding
    of each other may take either, as it may between PyTorch and ONNX Runtime: within about 1e-7 of the
    largest score for power-of-two factors (the models' strides), 1e-5 for odd ones, whose weights PyTorch
    rounds to float32. Exact ties go to the lower class (exact whenever the arithmetic is, e.g. small integer
    scores with a power-of-two factor).
    """
    num_classes, h, w = scores.shape
    factor = operator.index(factor)
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    if num_classes > 256:
        return argmax_labels(resize_bilinear(scores, h * factor, w * factor))
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    if factor == 1:
        return argmax_labels(scores)
    ws = (scratch or Scratch()).workspace((num_classes, h, w, factor))
    geo = ws.geometry
    flat = scores.reshape(num_classes, h * w)
    np.max(flat, axis=0, out=ws.best)
    tol = np.float32(1e-5 * max(float(ws.best.max()), -float(flat.min())))  # rounding scales with magnitude
    # per coarse pixel: the class beating all others by tol (code < 2 * _CODE) or none
    np.subtract(ws.best, tol, out=ws.best)
    np.greater_equal(flat, ws.best, out=ws.near)
    np.dot(_class_codes(num_classes), ws.near, out=ws.code)
    # per cell (the edge-padded grid of corners): the smallest and the largest corner code
    padded = ws.padded
    np.take(ws.code, geo.pad_index, out=padded.reshape(-1))
    low = np.minimum(padded[:-1], padded[1:])
    high = np.maximum(padded[:-1], padded[1:])
    cell_code = ws.cell_code.reshape(2, h + 1, w + 1)
    np.minimum(low[:, :-1], low[:, 1:], out=cell_code[0])
    np.maximum(high[:, :-1], high[:, 1:], out=cell_code[1])
    np.minimum(cell_code[0], 2 * _CODE - 1, out=cell_code[0])
    # fill every cell with its lowest code's class: right where all four corners have the same clear winner;
    # a cell's row of pixels is written as whole words (the grid viewed as uint16/32/64)
    np.subtract(cell_code[0], _CODE, out=ws.cell_label, casting="unsafe")
    words = ws.grid.reshape(-1).view(geo.word)
    words.reshape(h + 1, factor, w + 1, -1)[...] = np.take(_splat(geo.word), ws.cell_label)[:, None, :, None]
    cells = np.flatnonzero(cell_code[1] > cell_code[0])
    if cells.size:
        _boundary_cells(flat, cells, ws, tol, words)
    o = geo.offset
    return ws.grid[o : o + h * factor, o : o + w * factor]


class _Workspace:
    """Index tables and buffers of :func:`upsample_argmax` for one layout (classes, h, w, factor)."""

    def __init__(self, num_classes: int, h: int, w: int, factor: int) -> None:
        cells, ff = (h + 1) * (w + 1), factor * factor
        self.geometry = _cell_geometry(h, w, factor)
        self.best = np.empty(h * w, np.float32)
        self.near = np.empty((num_classes, h * w), np.float32)
        self.code = np.empty(h * w, np.float32)
        self.padded = np.empty((h + 2, w + 2), np.float32)
        self.cell_code = np.empty((2, cells), np.float32)
        self.cell_label = np.empty((h + 1, w + 1), np.uint8)
        self.grid = np.empty(((h + 1) * factor, (w + 1) * factor), np.uint8)
        # sized for every cell on a boundary; untouched pages cost nothing
        self.corners = np.empty(num_classes * 4 * cells, np.float32)
        self.above = np.empty(2 * num_classes * 4 * cells, np.float32)
        self.candidate = np.empty(num_classes * cells, np.float32)
        self.pair_diff = np.empty(cells * ff, np.float32)
        self.pair_label = np.empty(cells * ff, np.uint8)
        self.chunk = max(1, min(cells, _CHUNK // (num_classes * ff)))
        self.values = np.empty(num_classes * self.chunk * ff, np.float32)


class _CellGeometry:
    """Index tables of one (h, w, factor) layout. Cell (r, s) spans the pixels between edge-padded coarse rows
    r, r + 1 and columns s, s + 1; the grid of all cells starts ``offset`` pixels before the output."""

    def __init__(self, h: int, w: int, factor: int) -> None:
        self.offset = (factor + 1) // 2
        rows = np.clip(np.arange(-1, h + 1), 0, h - 1)
        cols = np.clip(np.arange(-1, w + 1), 0, w - 1)
        padded = rows[:, None] * w + cols
        self.pad_index = padded.ravel()
        corners = [padded[:-1, :-1], padded[:-1, 1:], padded[1:, :-1], padded[1:, 1:]]
        self.corner_index = np.stack(corners).reshape(4, -1)
        # the output grid as words of gcd(factor, 8) bytes: a cell's row of pixels is factor / unit words
        unit = math.gcd(factor, 8)
        self.word = np.dtype(f"u{unit}")
        row_words = (w + 1) * factor // unit
        r, s = np.divmod(np.arange((h + 1) * (w + 1)), w + 1)
        pixel_words = np.arange(factor)[:, None] * row_words + np.arange(factor // unit)
        self.cell_words = (r * factor * row_words + s * (factor // unit))[:, None] + pixel_words.ravel()
        self.weights = _cell_weights(factor)
        for table in vars(self).values():
            if isinstance(table, np.ndarray):
                table.flags.writeable = False


@functools.lru_cache(maxsize=16)
def _cell_geometry(h: int, w: int, factor: int) -> _CellGeometry:
    return _CellGeometry(h, w, factor)


@functools.lru_cache(maxsize=16)
def _cell_weights(factor: int) -> np.ndarray:
    """4 × factor² float32 weights of a cell's corners (top-left, top-right, bottom-left, bottom-right) per
    pixel (row-major): the exact bilinear weights, PyTorch's for power-of-two factors."""
    frac = (np.arange(factor) - (factor + 1) // 2 + 0.5) / factor + 0.5
    along = np.stack([1 - frac, frac])
    return (along[:, None, :, None] * along[None, :, None, :]).reshape(4, factor * factor).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _class_codes(num_classes: int) -> np.ndarray:
    return np.arange(_CODE, _CODE + num_classes, dtype=np.float32)


@functools.lru_cache(maxsize=8)
def _ones(num_classes: int) -> np.ndarray:
    return np.ones(num_classes, np.float32)


@functools.lru_cache(maxsize=8)
def _splat(word: np.dtype) -> np.ndarray:
    """Each byte value repeated over a word."""
    return np.arange(256, dtype=word) * word.type(int.from_bytes(b"\x01" * word.itemsize, "little"))


def _boundary_cells(
    flat: np.ndarray, cells: np.ndarray, ws: _Workspace, tol: np.float32, words: np.ndarray
) -> None:
    """Labels of the cells ``cells`` (flat indices) written into the output ``words``."""
    num_classes, hw = flat.shape
    n = cells.size
    geo = ws.geometry
    ff = geo.weights.shape[1]
    corner_index = np.take(geo.corner_index, cells, axis=1)  # (4, n)
    corners = ws.corners[: num_classes * 4 * n].reshape(num_classes, 4, n)
    np.take(flat, corner_index, axis=1, out=corners)
    # references: the smallest and the largest class winning a corner by tol (any class where none does)
    ref = np.take(ws.cell_code, cells, axis=1)
    clear = ref[1] < 2 * _CODE
    ref = np.minimum(ref, _CODE + num_classes - 1).astype(np.intp)
    ref -= _CODE
    ref_values = np.take(flat, (ref * hw)[:, None, :] + corner_index)  # (2, 4, n)
    # a class below a reference at all four corners by more than tol wins nowhere in the cell
    above = ws.above[: 2 * num_classes * 4 * n].reshape(2, num_classes, 4, n)
    np.subtract(corners, ref_values[:, None], out=above)
    candidate = ws.candidate[: num_classes * n].reshape(num_classes, n)
    np.greater_equal(above.max(axis=2).min(axis=0), -tol, out=candidate)
    pair = (_ones(num_classes) @ candidate == 2) & clear  # the two candidates are the references
    # every cell as the pair of its references first (strictly greater: a tie goes to the lower class);
    # the other cells are redone below
    diff = ws.pair_diff[: n * ff].reshape(n, ff)
    np.matmul((ref_values[1] - ref_values[0]).T, geo.weights, out=diff)
    label = ws.pair_label[: n * ff].reshape(n, ff)
    np.greater(diff, 0, out=label.view(np.bool_))
    ref8 = ref.astype(np.uint8)
    label *= (ref8[1] - ref8[0])[:, None]
    label += ref8[0][:, None]
    cell_words = np.take(geo.cell_words, cells, axis=0)
    words[cell_words] = label.view(geo.word).reshape(n, -1)
    multi = np.flatnonzero(~pair)
    for first in range(0, multi.size, ws.chunk):
        part = multi[first : first + ws.chunk]
        m = part.size
        values = ws.values[: num_classes * m * ff].reshape(num_classes, m, ff)
        np.matmul(corners[:, :, part].transpose(0, 2, 1), geo.weights, out=values)
        labels = argmax_labels(values.reshape(num_classes, m * ff))
        words[cell_words[part]] = labels.view(geo.word).reshape(m, -1)


def _linear_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of half-pixel linear interpolation (``align_corners=False``)."""
    scale = size_in / size_out
    src = (np.arange(size_out, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.clip(src, 0.0, None)
    i0 = np.minimum(np.floor(src).astype(np.intp), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    frac = (src - i0).astype(np.float32)
    return i0, i1, frac


def resize_bilinear(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a C×H×W float array to C×height×width like ``torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False)`` (no antialiasing): separable, rows first, then columns."""
    if scores.shape[1:] == (height, width):
        return np.array(scores, dtype=np.float32)
    y0, y1, fy = _linear_taps(scores.shape[1], height)
    top = scores[:, y0, :]
    rows = top + (scores[:, y1, :] - top) * fy[None, :, None]
    x0, x1, fx = _linear_taps(scores.shape[2], width)
    left = rows[:, :, x0]
    return (left + (rows[:, :, x1] - left) * fx[None, None, :]).astype(np.float32, copy=False)


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """Source index per output index for nearest-neighbour resizing with half-pixel centres."""
    src = np.floor((np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out)).astype(np.intp)
    return np.minimum(src, size_in - 1)


def resize_nearest(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an H×W label map with nearest-neighbour sampling (labels are never blended)."""
    if labels.shape == (height, width):
        return labels
    rows = nearest_indices(labels.shape[0], height)
    cols = nearest_indices(labels.shape[1], width)
    return labels[rows[:, None], cols[None, :]]
