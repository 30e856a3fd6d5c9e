"""Numpy kernels of the runtime: normalization, argmax, resizing; vectorised and torch-free.

The normalization performs exactly the float32 operations of training, ``(x / 255 - mean) / std``, so an image
fed through the runtime reaches the network bit for bit as it does in PyTorch.
"""

from __future__ import annotations

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
