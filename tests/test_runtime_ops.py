"""The runtime's numpy kernels against their PyTorch and numpy counterparts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgeseg.runtime.ops import (
    argmax_labels,
    channel_vector,
    normalize_into,
    resize_bilinear,
    resize_nearest,
)
from edgeseg.runtime.tiling import edge_ramp, tile_starts

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def test_normalization_is_bitwise_the_training_formula():
    img = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    padded = np.full((3, 40, 64), 7.0, dtype=np.float32)
    normalize_into(img, padded[:, :37, :53], channel_vector(MEAN, "mean"), channel_vector(STD, "std"))
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    expected = (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    np.testing.assert_array_equal(padded[:, :37, :53], expected.numpy())
    assert (padded[:, 37:, :] == 7).all() and (padded[:, :, 53:] == 7).all()


@pytest.mark.parametrize("num_classes", [1, 2, 19, 300])
def test_argmax_labels_equals_numpy_argmax_including_ties(num_classes):
    rng = np.random.default_rng(num_classes)
    scores = rng.integers(-3, 3, (num_classes, 31, 17)).astype(np.float32)  # coarse values: many ties
    labels = argmax_labels(scores)
    assert labels.dtype == (np.uint16 if num_classes > 256 else np.uint8)
    np.testing.assert_array_equal(labels, np.argmax(scores, axis=0))
    cropped = scores[:, 3:20, 2:15]  # a strided view, as the runtime crops padded outputs
    np.testing.assert_array_equal(argmax_labels(cropped), np.argmax(cropped, axis=0))


@pytest.mark.parametrize("size", [(13, 29), (64, 48), (5, 7)])
def test_bilinear_resize_matches_torch(size):
    scores = np.random.default_rng(1).standard_normal((4, 16, 24)).astype(np.float32)
    expected = F.interpolate(torch.from_numpy(scores)[None], size=size, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(resize_bilinear(scores, *size), expected[0].numpy(), atol=1e-5)


def test_nearest_resize_matches_torch_nearest_exact():
    labels = np.random.default_rng(2).integers(0, 9, (16, 24)).astype(np.uint8)
    for size in [(13, 29), (64, 48), (16, 24)]:
        as_float = torch.from_numpy(labels)[None, None].float()
        expected = F.interpolate(as_float, size=size, mode="nearest-exact")[0, 0].numpy().astype(np.uint8)
        np.testing.assert_array_equal(resize_nearest(labels, *size), expected)


def test_tiles_cover_the_image_with_the_requested_overlap():
    for length, tile, overlap in [(150, 48, 12), (48, 48, 12), (30, 48, 12), (97, 32, 0)]:
        starts = tile_starts(length, tile, overlap)
        size = min(tile, length)
        assert starts[0] == 0 and starts[-1] + size == length
        assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:], strict=False))
    window = edge_ramp(48, 12, fade_start=True, fade_end=False)
    assert (window > 0).all() and window.max() == 1.0 and window[-1] == 1.0 and window[0] < 0.05
    assert (np.diff(window[:12]) > 0).all()
