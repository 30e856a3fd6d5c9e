"""The runtime's numpy kernels against their PyTorch and numpy counterparts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgeseg.runtime.ops import (
    Scratch,
    argmax_labels,
    channel_vector,
    normalize_into,
    resize_bilinear,
    resize_nearest,
    upsample_argmax,
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


def _scores(kind: str, num_classes: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Coarse scores: random floats; small integers (many exact ties); zeros; thirds (ties that only float32
    rounding breaks, differently at each pixel); or ulps (class 1 within two float steps of class 0)."""
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal((num_classes, h, w))
    if kind == "random":
        return (normal * 4).astype(np.float32)
    if kind == "ties":
        return np.round(normal * 1.5).astype(np.float32)
    if kind == "thirds":
        return (np.round(normal * 4) / 3).astype(np.float32)
    if kind == "ulps":
        scores = (normal * 4).astype(np.float32)
        scores[1] = scores[0]
        for _ in range(2):
            step = rng.integers(-1, 2, (h, w))
            toward = np.where(step > 0, np.float32(np.inf), np.float32(-np.inf))
            scores[1] = np.where(step == 0, scores[1], np.nextafter(scores[1], toward))
        return scores
    return np.zeros((num_classes, h, w), np.float32)


def _torch_labels(scores: np.ndarray, factor: int, margin: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's labels (the first maximum: ties to the lowest class) and where they are decided: the two
    best interpolated classes more than ``margin`` of the largest score apart."""
    tensor = torch.from_numpy(scores)[None]
    up = F.interpolate(tensor, scale_factor=factor, mode="bilinear", align_corners=False)[0].numpy()
    top2 = np.sort(up, axis=0)[-2:] if up.shape[0] > 1 else np.stack([up[0] - 1, up[0]])
    decided = top2[1] - top2[0] > margin * max(float(np.abs(scores).max()), 1e-30)
    return np.argmax(up, axis=0), decided


@pytest.mark.parametrize(
    ("factor", "num_classes", "size", "kind"),
    [
        (8, 8, (40, 36), "random"),
        (8, 8, (40, 36), "ties"),
        (2, 5, (45, 31), "ties"),
        (4, 21, (17, 23), "random"),
        (4, 21, (17, 23), "ties"),
        (16, 5, (1, 9), "random"),  # h = 1
        (32, 2, (6, 1), "ties"),  # w = 1
        (2, 7, (1, 1), "random"),
        (8, 256, (3, 4), "ties"),
        (8, 1, (5, 7), "random"),
        (4, 12, (20, 20), "zeros"),
    ],
)
def test_upsample_argmax_equals_torch_interpolate_then_argmax(factor, num_classes, size, kind):
    """Power-of-two factors: every pixel, exact ties included (small integers interpolate exactly)."""
    scores = _scores(kind, num_classes, *size, seed=factor * num_classes)
    labels = upsample_argmax(scores, factor)
    assert labels.dtype == np.uint8 and labels.shape == (size[0] * factor, size[1] * factor)
    np.testing.assert_array_equal(labels, _torch_labels(scores, factor)[0])


@pytest.mark.parametrize(
    ("factor", "num_classes", "size", "kind"),
    [
        (8, 4, (24, 30), "ulps"),
        (3, 4, (24, 30), "ulps"),
        (3, 6, (30, 26), "thirds"),
        (5, 9, (14, 15), "ties"),
    ],
)
def test_upsample_argmax_near_ties_and_odd_factors(factor, num_classes, size, kind):
    """Where float32 rounding decides (classes a few ulps apart; PyTorch's float32 weights for odd factors,
    which differ from the exact thirds or fifths by ~1e-7), pixels more than 1e-5 apart must agree."""
    scores = _scores(kind, num_classes, *size, seed=factor)
    expected, decided = _torch_labels(scores, factor)
    labels = upsample_argmax(scores, factor)
    assert decided.mean() > 0.3
    np.testing.assert_array_equal(labels[decided], expected[decided])
    assert (labels == expected).mean() > 0.9


def test_upsample_argmax_reuses_one_scratch_across_shapes():
    scratch = Scratch()
    layouts = [(4, 9, 7, 8), (6, 3, 12, 2), (4, 9, 7, 8), (2, 1, 1, 4), (5, 30, 20, 16), (4, 9, 7, 8)]
    for seed, (num_classes, h, w, factor) in enumerate(layouts):
        scores = _scores("random" if seed % 2 else "ties", num_classes, h, w, seed)
        labels = upsample_argmax(scores, factor, scratch)
        np.testing.assert_array_equal(labels, _torch_labels(scores, factor)[0])


def test_upsample_argmax_edge_cases():
    scores = _scores("random", 3, 5, 4)
    np.testing.assert_array_equal(upsample_argmax(scores, 1), np.argmax(scores, axis=0))
    many = _scores("random", 300, 2, 3)
    labels = upsample_argmax(many, 4)  # above 256 classes: the full upsampling, uint16 labels
    assert labels.dtype == np.uint16 and labels.shape == (8, 12)
    with pytest.raises(ValueError):
        upsample_argmax(scores, 0)
