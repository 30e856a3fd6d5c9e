"""What `/v1/segment` returns: a palette PNG mask, a PNG overlay, or JSON with class pixel counts and RLE."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from edgeseg.runtime import Segmenter, mask_image, overlay

FORMATS = ("png", "json", "overlay")


def rle_encode(labels: np.ndarray) -> dict[str, Any]:
    """Run-length encode an H×W label map in row-major order: ``values[i]`` repeats ``counts[i]`` times."""
    flat = np.ascontiguousarray(labels).ravel()
    if flat.size == 0:
        return {"size": list(labels.shape), "order": "row-major", "values": [], "counts": []}
    starts = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], starts, [flat.size]))
    return {
        "size": [int(labels.shape[0]), int(labels.shape[1])],
        "order": "row-major",
        "values": flat[bounds[:-1]].astype(int).tolist(),
        "counts": np.diff(bounds).astype(int).tolist(),
    }


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """The label map of :func:`rle_encode`'s output (uint16, so any class index fits)."""
    height, width = rle["size"]
    flat = np.repeat(np.asarray(rle["values"], dtype=np.uint16), np.asarray(rle["counts"], dtype=np.int64))
    if flat.size != height * width:
        raise ValueError(f"RLE counts sum to {flat.size}, not {height}x{width}")
    return flat.reshape(height, width)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # masks compress well even at the fastest level
    return buf.getvalue()


def mask_png(labels: np.ndarray, segmenter: Segmenter) -> bytes:
    """The label map as a palette PNG: reading it back gives the labels, viewing it the class colours."""
    return png_bytes(mask_image(labels, segmenter.palette))


def overlay_png(image: np.ndarray, labels: np.ndarray, segmenter: Segmenter, alpha: float) -> bytes:
    return png_bytes(Image.fromarray(overlay(image, labels, segmenter.palette, alpha)))


def summary(labels: np.ndarray, segmenter: Segmenter) -> dict[str, Any]:
    """Classes present with their pixel counts and colours, and the mask as RLE."""
    counts = np.bincount(labels.ravel(), minlength=len(segmenter.classes))
    classes = [
        {
            "index": int(i),
            "name": segmenter.classes[i] if i < len(segmenter.classes) else f"class_{i}",
            "pixels": int(n),
            "color": [int(c) for c in segmenter.palette[i]] if i < len(segmenter.palette) else [0, 0, 0],
        }
        for i, n in enumerate(counts)
        if n
    ]
    return {
        "height": int(labels.shape[0]),
        "width": int(labels.shape[1]),
        "classes": classes,
        "mask": rle_encode(labels),
    }
