"""Loaders: shapes and dtypes, seeded determinism (workers included), crops of mixed sizes, normalization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgeseg.data import (
    DataConfig,
    SyntheticSegDataset,
    build_dataset,
    build_loader,
    build_train_loader,
    build_val_loader,
    normalize,
)
from edgeseg.errors import EdgesegError


def _first(loader: torch.utils.data.DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    return next(iter(loader))


def test_synthetic_train_loader_yields_float_images_and_int64_masks() -> None:
    ds = SyntheticSegDataset("train", 10, 32)
    loader = build_train_loader(ds, DataConfig(batch_size=4, crop_size=32), seed=0)
    assert len(loader) == 2  # the incomplete last batch is dropped
    images, masks = _first(loader)
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert masks.shape == (4, 32, 32) and masks.dtype == torch.int64
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0 and float(images.max()) > 0.5
    index = next(i for i in range(10) if np.array_equal(ds[i][1], masks[0].numpy()))
    assert torch.equal(images[0], torch.from_numpy(ds[index][0]).permute(2, 0, 1).float() / 255)


def test_order_and_crops_depend_only_on_seed_and_epoch() -> None:
    ds = SyntheticSegDataset("train", 12, 48)
    cfg = DataConfig(batch_size=4, crop_size=40)  # crops vary with the sample seed

    def epoch_batches(seed: int, epoch: int, workers: int = 0) -> list[torch.Tensor]:
        loader = build_loader(ds, 4, True, 40, seed, num_workers=workers)
        loader.sampler.set_epoch(epoch)
        return [images for images, _ in loader]

    first = epoch_batches(0, 0)
    assert all(torch.equal(a, b) for a, b in zip(first, epoch_batches(0, 0), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(first, epoch_batches(0, 0, workers=1), strict=True))
    assert not torch.equal(first[0], epoch_batches(0, 1)[0])
    assert not torch.equal(first[0], epoch_batches(1, 0)[0])
    loader = build_train_loader(ds, cfg, seed=0)  # without set_epoch, each pass is the next epoch
    passes = [_first(loader)[0] for _ in range(2)]
    assert torch.equal(passes[0], first[0]) and not torch.equal(passes[1], first[0])


def test_val_loader_keeps_whole_images_in_order() -> None:
    ds = SyntheticSegDataset("val", 5, 32)
    loader = build_val_loader(ds, DataConfig(batch_size=2, crop_size=16))
    batches = list(loader)
    assert [len(m) for _, m in batches] == [2, 2, 1]  # same-size images: batched, nothing dropped
    assert batches[0][0].shape == (2, 3, 32, 32)
    assert np.array_equal(batches[2][1][0].numpy(), ds[4][1])


def _mixed_size_dataset(root: Path) -> None:
    sizes = [(20, 30), (36, 24), (50, 50)]
    for k, (h, w) in enumerate(sizes):
        for folder, array in (
            ("images", np.full((h, w, 3), 40 * k + 10, dtype=np.uint8)),
            ("masks", np.full((h, w), k, dtype=np.uint8)),
        ):
            (root / folder).mkdir(exist_ok=True)
            Image.fromarray(array).save(root / folder / f"s{k}.png")
    (root / "classes.txt").write_text("a\nb\nc\n")


def test_mixed_sizes_are_cropped_and_padded_for_training(tmp_path: Path) -> None:
    _mixed_size_dataset(tmp_path)
    cfg = DataConfig(batch_size=3, crop_size=32, split_ratio=1.0)
    ds = build_dataset(tmp_path, "train", cfg)
    images, masks = _first(build_train_loader(ds, cfg, seed=0))
    assert images.shape == (3, 3, 32, 32) and masks.shape == (3, 32, 32)
    assert (masks == 255).any()  # the small images were padded with ignore
    padded = masks == 255
    assert (images.permute(0, 2, 3, 1)[padded] == 0).all()
    val = build_val_loader(ds, cfg)  # mixed sizes: one image per batch, whole
    assert [tuple(m.shape) for _, m in val] == [(1, 20, 30), (1, 36, 24), (1, 50, 50)]
    with pytest.raises(EdgesegError, match="cannot batch images of different sizes"):
        list(build_val_loader(ds, DataConfig(batch_size=3, val_batch_size=3, split_ratio=1.0)))
    resized = build_val_loader(ds, DataConfig(resize=10, split_ratio=1.0))
    assert [tuple(m.shape[1:]) for _, m in resized] == [(10, 15), (15, 10), (10, 10)]


def test_given_sampler_decides_the_order() -> None:
    ds = SyntheticSegDataset("val", 6, 32)
    loader = build_val_loader(ds, DataConfig(batch_size=1), sampler=[4, 1])
    masks = [m[0].numpy() for _, m in loader]
    assert len(masks) == 2 and np.array_equal(masks[0], ds[4][1]) and np.array_equal(masks[1], ds[1][1])


def test_normalize_per_channel() -> None:
    images = torch.full((2, 3, 4, 4), 0.5)
    out = normalize(images, [0.5, 0.25, 0.0], [0.5, 0.25, 2.0])
    assert torch.allclose(out[:, 0], torch.zeros(2, 4, 4)) and torch.allclose(out[:, 1], torch.ones(2, 4, 4))
    assert torch.allclose(out[:, 2], torch.full((2, 4, 4), 0.25)) and torch.equal(
        images, torch.full_like(images, 0.5)
    )
