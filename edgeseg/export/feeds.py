"""Inputs for parity checks: random tensors at several sizes and real images fitted to a model's input.

Everything here is numpy: the same arrays go to PyTorch and ONNX Runtime. A model's metadata decides the
layout (uint8 NHWC when preprocessing is in the graph, else normalized float NCHW), whether sizes must be
padded to the stride, and whether the size is fixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from edgeseg.errors import InputError
from edgeseg.runtime.metadata import ModelMetadata
from edgeseg.runtime.ops import normalized_batch

# One odd and non-square size, one even non-square, one batch of 2; each ≥ 10,000 pixels so that a single
# near-tie pixel cannot pull argmax agreement under 99.99 %.
RANDOM_SIZES: tuple[tuple[int, int, int], ...] = ((1, 129, 97), (1, 96, 160), (2, 112, 112))


@dataclass
class Feed:
    """One model input and, for real images, the masks and the H×W to crop predictions back to."""

    name: str
    array: np.ndarray
    masks: np.ndarray | None = None
    crop: tuple[int, int] | None = None


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def fixed_dims(input_shape: Sequence[object]) -> list[int | None]:
    """The input shape with symbolic dimensions as None (from an onnxruntime ``NodeArg.shape``)."""
    return [d if isinstance(d, int) and d > 0 else None for d in input_shape]


def _axes(meta: ModelMetadata) -> tuple[int, int]:
    return (1, 2) if meta.input_layout == "NHWC" else (2, 3)


def random_feeds(
    meta: ModelMetadata,
    input_shape: Sequence[object],
    sizes: Sequence[tuple[int, int, int]] = RANDOM_SIZES,
    seed: int = 0,
) -> list[Feed]:
    """Random inputs of the given (batch, H, W) sizes; fixed dimensions of ``input_shape`` win.

    Models that do not pad internally get sizes rounded up to their stride. uint8 NHWC inputs are
    uniform pixels, float NCHW inputs standard normal (the range of normalized images).
    """
    rng = np.random.default_rng(seed)
    dims = fixed_dims(input_shape)
    h_axis, w_axis = _axes(meta)
    feeds = []
    for batch, height, width in sizes:
        batch = dims[0] or batch
        height = dims[h_axis] or height
        width = dims[w_axis] or width
        if not meta.pads_internally and dims[h_axis] is None:
            height, width = _round_up(height, meta.stride), _round_up(width, meta.stride)
        if meta.input_layout == "NHWC":
            array = rng.integers(0, 256, size=(batch, height, width, 3), dtype=np.uint8)
        else:
            array = rng.standard_normal((batch, 3, height, width), dtype=np.float32)
        feeds.append(Feed(f"random {batch}x{height}x{width}", array))
    return feeds


def _resize_pair(
    image: np.ndarray, mask: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear image and nearest mask resize to a fixed model size."""
    from PIL import Image

    resized = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    rows = np.minimum(
        ((np.arange(height) + 0.5) * mask.shape[0] / height).astype(np.int64), mask.shape[0] - 1
    )
    cols = np.minimum(((np.arange(width) + 0.5) * mask.shape[1] / width).astype(np.int64), mask.shape[1] - 1)
    return resized, mask[np.ix_(rows, cols)]


def image_feed(
    image: np.ndarray, mask: np.ndarray, meta: ModelMetadata, input_shape: Sequence[object], name: str
) -> Feed:
    """A real image (uint8 H×W×3 RGB) and its mask as the model's batch-of-one input.

    Static models get the image resized to their size (mask: nearest); models that do not pad
    internally get zeros padded bottom/right to the stride, and ``crop`` says what to cut back.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"{name}: expected a uint8 H×W×3 image, got {image.dtype} {image.shape}")
    dims = fixed_dims(input_shape)
    h_axis, w_axis = _axes(meta)
    if dims[h_axis] is not None and dims[w_axis] is not None:
        image, mask = _resize_pair(image, mask, dims[h_axis], dims[w_axis])
    height, width = image.shape[:2]
    array = image[None] if meta.input_layout == "NHWC" else normalized_batch(image, meta.mean, meta.std)
    if not meta.pads_internally and dims[h_axis] is None:
        pad = [(0, 0)] * 4
        pad[h_axis] = (0, _round_up(height, meta.stride) - height)
        pad[w_axis] = (0, _round_up(width, meta.stride) - width)
        array = np.pad(array, pad)
    return Feed(name, np.ascontiguousarray(array), masks=np.asarray(mask)[None], crop=(height, width))


def sample_feeds(
    samples: Iterable[tuple[np.ndarray, np.ndarray]], meta: ModelMetadata, input_shape: Sequence[object]
) -> list[Feed]:
    """One feed per (image, mask) pair."""
    return [image_feed(img, mask, meta, input_shape, f"image {i}") for i, (img, mask) in enumerate(samples)]
