"""The built-in synthetic dataset: determinism, configuration, class variety, colour is not a shortcut."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.data import SYNTHETIC_CLASSES, DataConfig, SyntheticSegDataset, build_dataset
from edgeseg.errors import InputError

N = len(SYNTHETIC_CLASSES)


def test_samples_are_a_function_of_seed_split_and_index() -> None:
    a, b = SyntheticSegDataset("train", 10, 64, seed=1), SyntheticSegDataset("train", 10, 64, seed=1)
    image, mask = a[3]
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert mask.dtype == np.int64 and mask.shape == (64, 64)
    for other in (b[3], a[-7]):  # a second instance, a negative index
        assert np.array_equal(other[0], image) and np.array_equal(other[1], mask)
    a[5]  # reading other samples in between changes nothing
    assert np.array_equal(a[3][0], image)
    different = [
        a[4],
        SyntheticSegDataset("val", 10, 64, seed=1)[3],
        SyntheticSegDataset("train", 10, 64, seed=2)[3],
    ]
    for other_image, _ in different:
        assert not np.array_equal(other_image, image)
    with pytest.raises(IndexError):
        a[10]


def test_config_sets_sizes_and_counts() -> None:
    cfg = DataConfig(synthetic_train=7, synthetic_val=3, synthetic_size=48, synthetic_seed=5)
    train, val = build_dataset("synthetic", "train", cfg), build_dataset("synthetic", "val", cfg)
    assert (len(train), len(val), train.fixed_size) == (7, 3, (48, 48))
    assert train.num_classes == len(SYNTHETIC_CLASSES) == len(train.palette) == 8
    assert train.root == "synthetic" and train.ignore_index == 255
    image, mask = SyntheticSegDataset("train", 2, (40, 72))[0]
    assert image.shape == (40, 72, 3) and mask.shape == (40, 72)
    with pytest.raises(InputError, match="num_classes is 5 but the synthetic dataset has 8"):
        build_dataset("synthetic", "train", DataConfig(num_classes=5))
    with pytest.raises(InputError, match="at least 32 pixels"):
        SyntheticSegDataset("train", 2, 16)


def test_every_class_appears_with_clutter_and_background() -> None:
    ds = SyntheticSegDataset("train", 24, 96)
    counts = np.zeros(N)
    classes_per_image = []
    for i in range(len(ds)):
        mask = ds[i][1]
        counts += np.bincount(mask.ravel(), minlength=N)
        classes_per_image.append(len(np.unique(mask)))
    share = counts / counts.sum()
    assert (share[1:] > 0.005).all(), share  # every object class is present
    assert 0.55 < share[0] < 0.95  # background dominates but objects are substantial
    assert np.mean(classes_per_image) >= 3.5  # several objects per scene


def test_colour_does_not_identify_the_class() -> None:
    """A nearest-mean-colour classifier over object pixels must stay near chance (1/7)."""
    ds = SyntheticSegDataset("train", 40, 64)
    pixels: dict[int, list[np.ndarray]] = {c: [] for c in range(1, N)}
    for i in range(20):
        image, mask = ds[i]
        for c in range(1, N):
            pixels[c].append(image[mask == c].astype(np.float64))
    means = np.stack([np.concatenate(pixels[c]).mean(0) for c in range(1, N)])
    correct = total = 0
    for i in range(20, 40):
        image, mask = ds[i]
        fg = mask > 0
        rgb = image[fg].astype(np.float64)
        guess = np.argmin(((rgb[:, None, :] - means[None]) ** 2).sum(-1), axis=1) + 1
        correct += int((guess == mask[fg]).sum())
        total += int(fg.sum())
    assert correct / total < 0.3  # colour-coded classes would score close to 1
