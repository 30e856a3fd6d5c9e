"""Numpy kernels of the runtime: normalization, argmax, resizing; vectorised and torch-free.

The normalization performs exactly the float32 operations of training, ``(x / 255 - mean) / std``, so an image
fed through the runtime reaches the network bit for bit as it does in PyTorch. :func:`upsample_argmax` gives
the labels of bilinearly upsampled scores without building the full-resolution scores (for models exported
with ``coarse=True``, whose graph stops before the final upsampling).
"""

from __future__ import annotations

import math

import numpy as np

_255 = np.float32(255)


def channel_vector(values: list[float] | tuple[float, ...], name: str) -> np.ndarray:
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


def argmax_labels(scores: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
    """Class index of the highest score per pixel of a C×H×W array, as an H×W uint8 map (uint16 above 256).

    Ties go to the lowest class index, as in ``numpy.argmax`` and ``torch.argmax``. ``numpy.argmax`` over the
    leading axis first transposes the whole score volume; this pass keeps to contiguous class planes: a
    vectorised max over classes, then per class a branch-free update ``label += (c - label) * (score == max)``
    visited from the last class to the first so that the lowest index wins. With ``scratch`` the work
    buffers are reused between calls (the returned map is always a new array).
    """
    num_classes = scores.shape[0]
    if num_classes > 256:
        return np.argmax(scores, axis=0).astype(np.uint16)
    plane = scores.shape[1:]
    if scratch is None:
        best, hit, step = np.empty(plane, np.float32), np.empty(plane, bool), np.empty(plane, np.uint8)
    else:
        best = scratch.get("argmax_best", plane, np.float32)
        hit = scratch.get("argmax_hit", plane, np.bool_)
        step = scratch.get("argmax_step", plane, np.uint8)
    np.max(scores, axis=0, out=best)
    labels = np.zeros(plane, dtype=np.uint8)
    hit_u8 = hit.view(np.uint8)
    for c in range(num_classes - 1, -1, -1):
        np.equal(scores[c], best, out=hit)
        np.subtract(np.uint8(c), labels, out=step)
        np.multiply(step, hit_u8, out=step)
        np.add(labels, step, out=labels)
    return labels


class Scratch:
    """Named work buffers kept between calls.

    Fresh arrays of a megabyte or more come from ``mmap`` and cost a page fault per 4 KiB on first touch;
    reusing them keeps that cost out of every image.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        """A C-contiguous array of ``shape`` (contents undefined) backed by the buffer called ``name``."""
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != np.dtype(dtype):
            buf = self._buffers[name] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)


def _edge_padded(scores: np.ndarray, scratch: Scratch) -> np.ndarray:
    """``scores`` (C×h×w) with its border rows and columns repeated once on every side."""
    c, h, w = scores.shape
    padded = scratch.get("padded", (c, h + 2, w + 2))
    padded[:, 1:-1, 1:-1] = scores
    padded[:, 0, 1:-1] = scores[:, 0]
    padded[:, -1, 1:-1] = scores[:, -1]
    padded[:, :, 0] = padded[:, :, 1]
    padded[:, :, -1] = padded[:, :, -2]
    return padded


def upsample_argmax(scores: np.ndarray, factor: int, scratch: Scratch | None = None) -> np.ndarray:
    """Labels of ``scores`` (C×h×w) upsampled bilinearly by an integer ``factor``, without upsampling them.

    Equals ``argmax_labels(resize_bilinear(scores, h * factor, w * factor))`` — PyTorch's
    ``interpolate(scale_factor=factor, mode="bilinear", align_corners=False)`` followed by an argmax — and
    returns an (h·factor)×(w·factor) uint8 map (a view of a buffer in ``scratch``, valid until its next use).

    Every output pixel is a convex combination of the four coarse pixels around it, with weights fixed by its
    position inside that cell. Where the same class wins at all four corners by more than float rounding can
    move (a margin of 1e-5 of the largest score), it wins at every point of the cell, and the cell's
    factor × factor pixels take that class at once. Only the other cells (those on class boundaries, a tenth
    to a sixth of a trained model's cells) are interpolated, in PyTorch's order of operations, and compared
    class by class. Above 256 classes it falls back to the full upsampling.
    """
    num_classes, h, w = scores.shape
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    if num_classes > 256:
        return argmax_labels(resize_bilinear(scores, h * factor, w * factor))
    scratch = scratch or Scratch()
    scores = np.asarray(scores, dtype=np.float32)
    padded = _edge_padded(scores, scratch)
    best = padded.max(axis=0)
    tol = np.float32(1e-5) * np.float32(max(float(best.max()), -float(padded.min())))
    winner = argmax_labels(padded)
    near_best = padded > (best - tol)
    clear = near_best.sum(axis=0, dtype=np.uint8) == 1
    cell = winner[:-1, :-1]
    same = (winner[1:, :-1] == cell) & (winner[:-1, 1:] == cell) & (winner[1:, 1:] == cell)
    same &= clear[:-1, :-1] & clear[1:, :-1] & clear[:-1, 1:] & clear[1:, 1:]
    # Cell (r, s) spans the pixels between padded coarse rows r, r+1 and columns s, s+1; the grid of all
    # cells starts `offset` pixels before the image (the half cell outside it is cropped at the end).
    grid = scratch.get("grid", (h + 1, factor, w + 1, factor), np.uint8)
    grid.reshape(h + 1, factor, (w + 1) * factor)[...] = np.repeat(cell, factor, axis=1)[:, None, :]
    rows, cols = np.nonzero(~same)
    if rows.size:
        grid[rows, :, cols, :] = _cell_labels(padded, rows, cols, factor, tol, scratch).transpose(2, 0, 1)
    offset = (factor + 1) // 2
    flat = grid.reshape((h + 1) * factor, (w + 1) * factor)
    return flat[offset : offset + h * factor, offset : offset + w * factor]


def _cell_labels(
    padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, factor: int, tol: np.float32, scratch: Scratch
) -> np.ndarray:
    """factor×factor×n labels of the cells at (rows, cols) of the edge-padded scores, interpolated fully.

    A class whose best corner score is below another class's worst corner score (by more than ``tol``) loses
    at every point of the cell. Where only two classes remain (about half of the cells on a boundary) just
    those two are interpolated and compared; the other cells interpolate every class.
    """
    num_classes, _, padded_w = padded.shape
    flat = padded.reshape(num_classes, -1)
    index = rows * padded_w + cols
    corners = scratch.get("corners", (4, num_classes, rows.size))
    for k, step in enumerate((0, 1, padded_w, padded_w + 1)):
        np.take(flat, index + step, axis=1, out=corners[k])
    candidate = corners.max(axis=0) >= corners.min(axis=0).max(axis=0) - tol
    pair = candidate.sum(axis=0) <= 2
    labels = scratch.get("cell_labels", (factor, factor, rows.size), np.uint8)
    weights = _cell_weights(factor)
    members = np.nonzero(pair)[0]
    if members.size:
        low = np.argmax(candidate[:, members], axis=0)
        high = num_classes - 1 - np.argmax(candidate[::-1, members], axis=0)
        score_low = _interpolate_cells(corners[:, low, members], weights, scratch, "low")
        score_high = _interpolate_cells(corners[:, high, members], weights, scratch, "high")
        # Strictly greater: a tie goes to the lower class index, as in argmax.
        labels[:, :, members] = np.where(score_high > score_low, high.astype(np.uint8), low.astype(np.uint8))
    members = np.nonzero(~pair)[0]
    if members.size:
        scores = _interpolate_cells(corners[:, :, members], weights, scratch, "all")
        labels[:, :, members] = argmax_labels(scores, scratch)
    return labels


def _cell_weights(factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of a cell, the weights of its cell's first and second coarse pixel along one axis."""
    frac = ((np.arange(factor) - (factor + 1) // 2 + 0.5) / factor + 0.5).astype(np.float32)
    return np.float32(1) - frac, frac


def _interpolate_cells(
    corners: np.ndarray, weights: tuple[np.ndarray, np.ndarray], scratch: Scratch, name: str
) -> np.ndarray:
    """Bilinear values inside cells from their corner values (4 × ... × m: top-left, top-right, bottom-left,
    bottom-right) as ... × factor × factor × m, along x first and then along y like PyTorch's kernel."""
    near, frac = weights
    factor = near.size
    lead = corners.shape[1:-1]
    extra = (None,) * len(lead)
    shape_x = (2, *lead, factor, corners.shape[-1])
    along_x = scratch.get(f"{name}_x", shape_x)
    part_x = scratch.get(f"{name}_x2", shape_x)
    np.multiply(near[(None, *extra, slice(None), None)], corners[0::2, ..., None, :], out=along_x)
    np.multiply(frac[(None, *extra, slice(None), None)], corners[1::2, ..., None, :], out=part_x)
    np.add(along_x, part_x, out=along_x)
    shape = (*lead, factor, factor, corners.shape[-1])
    values = scratch.get(name, shape)
    part = scratch.get(f"{name}_2", shape)
    np.multiply(near[(*extra, slice(None), None, None)], along_x[0][..., None, :, :], out=values)
    np.multiply(frac[(*extra, slice(None), None, None)], along_x[1][..., None, :, :], out=part)
    np.add(values, part, out=values)
    return values


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
