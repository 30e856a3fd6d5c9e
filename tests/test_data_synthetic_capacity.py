"""The synthetic dataset's ``capacity`` setting: determinism, configuration, the cues it is built on."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.data import DataConfig, SyntheticSegDataset, build_dataset
from edgeseg.data.synthetic_capacity import CAPACITY_CLASSES, CAPACITY_PALETTE, _region
from edgeseg.errors import InputError

N = len(CAPACITY_CLASSES)
WIRE = CAPACITY_CLASSES.index("wire")


def test_samples_are_deterministic_and_differ_from_the_standard_setting() -> None:
    a = SyntheticSegDataset("train", 6, 64, seed=1, variant="capacity")
    b = SyntheticSegDataset("train", 6, 64, seed=1, variant="capacity")
    image, mask = a[2]
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3) and mask.shape == (64, 64)
    assert np.array_equal(b[2][0], image) and np.array_equal(b[2][1], mask)
    assert not np.array_equal(a[3][0], image)
    assert not np.array_equal(SyntheticSegDataset("val", 6, 64, seed=1, variant="capacity")[2][0], image)
    assert not np.array_equal(SyntheticSegDataset("train", 6, 64, seed=1)[2][0], image)


def test_config_selects_the_setting_and_checks_it() -> None:
    cfg = DataConfig(synthetic_variant="capacity", synthetic_train=3, synthetic_val=2, synthetic_size=48)
    train = build_dataset("synthetic", "train", cfg)
    assert train.classes == CAPACITY_CLASSES and len(train.palette) == len(CAPACITY_PALETTE) == N == 11
    assert len(set(map(tuple, CAPACITY_PALETTE))) == N  # one colour per class
    assert build_dataset("synthetic", "val", cfg).classes == CAPACITY_CLASSES
    with pytest.raises(InputError, match="synthetic_variant: expected one of standard, capacity, got 'hard'"):
        build_dataset("synthetic", "train", DataConfig(synthetic_variant="hard"))
    with pytest.raises(InputError, match=r"num_classes is 8 but the synthetic dataset has 11 classes"):
        build_dataset("synthetic", "train", DataConfig(synthetic_variant="capacity", num_classes=8))


def test_every_class_appears_in_balance_and_objects_vary_in_scale() -> None:
    ds = SyntheticSegDataset("train", 60, 96, variant="capacity")
    counts = np.zeros(N)
    for i in range(len(ds)):
        counts += np.bincount(ds[i][1].ravel(), minlength=N)
    share = counts / counts.sum()
    assert 0.6 < share[0] < 0.9
    objects = share[1:WIRE]
    assert objects.min() > 0.3 * objects.max(), objects  # the 9 shape x texture classes are balanced
    assert share[WIRE] > 0.001


def test_wires_are_thin() -> None:
    """A 3x3 erosion removes nearly every wire pixel: wires are 1-3 pixels wide at 96 px."""
    ds = SyntheticSegDataset("train", 30, 96, variant="capacity")
    kept = total = 0
    for i in range(len(ds)):
        wire = np.pad(ds[i][1] == WIRE, 1)
        eroded = np.ones_like(wire[1:-1, 1:-1])
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                eroded &= wire[dy : dy + 96, dx : dx + 96]
        kept += int(eroded.sum())
        total += int(wire.sum())
    assert total > 0 and kept / total < 0.1


def test_decoys_make_both_shape_and_texture_necessary() -> None:
    """About 30 % of drawn regions are background: textured crosses or untextured object shapes."""
    rng = np.random.default_rng(0)
    decoys = textured_decoys = objects = 0
    for _ in range(300):
        image = np.zeros((96, 96, 3), np.float32)
        label = np.full((96, 96), -1, np.int64)
        _region(rng, image, label, 0.75)
        drawn = label >= 0
        if not drawn.any():
            continue
        if (label[drawn] == 0).all():
            decoys += 1
            pixels = image[drawn]
            luminance = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
            textured_decoys += int(np.ptp(luminance) > 30)  # a texture's two colours, not a shading
        else:
            assert (label[drawn] >= 1).all() and (label[drawn] < WIRE).all()
            objects += 1
    assert 0.2 < decoys / (decoys + objects) < 0.4
    assert 0.3 < textured_decoys / decoys < 0.7  # half crosses with an object's texture, half plain shapes


def test_colour_does_not_identify_the_class() -> None:
    """A nearest-mean-colour classifier over object pixels stays near chance (1/9)."""
    ds = SyntheticSegDataset("train", 40, 64, variant="capacity")
    means = []
    for c in range(1, WIRE):
        pixels = [ds[i][0][ds[i][1] == c].astype(np.float64) for i in range(20)]
        means.append(np.concatenate(pixels).mean(0))
    correct = total = 0
    for i in range(20, 40):
        image, mask = ds[i]
        fg = (mask > 0) & (mask < WIRE)
        guess = np.argmin(((image[fg].astype(np.float64)[:, None] - np.stack(means)[None]) ** 2).sum(-1), 1)
        correct += int((guess + 1 == mask[fg]).sum())
        total += int(fg.sum())
    assert correct / total < 0.25
