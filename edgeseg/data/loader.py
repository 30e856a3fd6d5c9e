"""Data loaders: seeded sampling, per-sample crop fitting, collation to float batches, normalization.

A loader yields ``(images float32 N×3×H×W in [0, 1], masks int64 N×H×W)``. Everything random in it is a
function of the seed and the epoch: the shuffle order, and each sample's crop (seeded by
``(seed, epoch, index)``), whatever the number of workers. Call ``loader.sampler.set_epoch(epoch)`` before
each epoch (as with ``DistributedSampler``); without it, each new iteration moves to the next epoch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from edgeseg.data.augment import fit_to_crop, resize_short_side
from edgeseg.data.config import DataConfig
from edgeseg.data.datasets import SegDataset
from edgeseg.errors import EdgesegError


class EpochSampler(Sampler):
    """Yield ``(index, epoch)`` pairs: indices from ``base`` (or a seeded shuffle), tagged with the epoch.

    The dataset wrapper seeds each sample's randomness with ``(seed, epoch, index)``, so crops do not depend
    on worker count, rank or position. ``base`` may be any sampler of indices, e.g. a ``DistributedSampler``;
    ``set_epoch`` is forwarded to it. Without ``base``, ``shuffle`` permutes ``range(length)`` with a
    generator seeded by ``(seed, epoch)``.
    """

    def __init__(self, length: int, seed: int, shuffle: bool, base: Sampler | None = None) -> None:
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.base = base
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order and sample seeds for the next iteration."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base) if self.base is not None else self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch = epoch + 1  # the next iteration is the next epoch unless set_epoch says otherwise
        if self.base is not None:
            if hasattr(self.base, "set_epoch"):
                self.base.set_epoch(epoch)
            indices = [int(i) for i in self.base]
        elif self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            indices = torch.randperm(self.length, generator=generator).tolist()
        else:
            indices = list(range(self.length))
        for index in indices:
            yield index, epoch


class _Prepared(Dataset):
    """Wraps a dataset: item ``(index, epoch)`` -> the sample, resized and fitted to the crop if asked."""

    def __init__(
        self,
        dataset: SegDataset,
        seed: int,
        crop_size: int | None,
        resize: int | None,
        scale_range: tuple[float, float] | None,
    ) -> None:
        self.dataset = dataset
        self.seed = seed
        self.crop_size = crop_size
        self.resize = resize
        self.scale_range = scale_range

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        index, epoch = key
        image, mask = self.dataset[index]
        if self.resize is not None:
            image, mask = resize_short_side(image, mask, self.resize)
        if self.crop_size is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            image, mask = fit_to_crop(
                image, mask, self.crop_size, rng, self.dataset.ignore_index, self.scale_range
            )
        return image, mask


def collate(samples: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(image uint8 H×W×3, mask)`` samples into ``(float32 N×3×H×W in [0, 1], int64 N×H×W)``.

    Samples of different sizes cannot be stacked: that raises an error suggesting a crop or batch size 1.
    """
    sizes = {image.shape[:2] for image, _ in samples}
    if len(sizes) > 1:
        raise EdgesegError(
            f"cannot batch images of different sizes {sorted(sizes)}; use a crop size for training and "
            "a validation batch size of 1"
        )
    images = torch.from_numpy(np.stack([image for image, _ in samples])).permute(0, 3, 1, 2)
    masks = torch.from_numpy(np.stack([mask for _, mask in samples]).astype(np.int64, copy=False))
    return images.float().div_(255.0).contiguous(), masks


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and ``random`` in a worker from torch's per-worker seed (derived from the loader's seed)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(
    dataset: SegDataset,
    batch_size: int,
    train: bool,
    crop_size: int | None,
    seed: int,
    num_workers: int = 0,
    sampler: Sampler | None = None,
    *,
    resize: int | None = None,
    scale_range: tuple[float, float] | None = None,
    drop_last: bool | None = None,
) -> DataLoader:
    """A DataLoader over ``dataset`` yielding ``(images float N×3×H×W in [0, 1], masks int64 N×H×W)``.

    Training (``train=True``) shuffles (unless ``sampler`` is given, which then decides the order), fits each
    sample to a random ``crop_size`` square (padded with 0 / ``ignore_index`` where smaller; rescaled first by
    a random factor in ``scale_range`` if given) and drops the last incomplete batch (``drop_last``).
    Validation keeps whole images in order; ``crop_size`` is ignored. ``resize`` (shorter side) applies to
    both. Deterministic for a given ``seed``, epoch and sampler, whatever ``num_workers``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    prepared = _Prepared(dataset, seed, crop_size if train else None, resize, scale_range if train else None)
    order = EpochSampler(len(dataset), seed, shuffle=train, base=sampler)
    if drop_last is None:
        drop_last = train and len(order) >= batch_size
    return DataLoader(
        prepared,
        batch_size=batch_size,
        sampler=order,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=drop_last,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )


def build_train_loader(
    dataset: SegDataset, cfg: DataConfig, seed: int, sampler: Sampler | None = None
) -> DataLoader:
    """Training loader for ``cfg``: batches of ``cfg.crop_size`` crops (taken after ``cfg.resize``)."""
    return build_loader(
        dataset, cfg.batch_size, True, cfg.crop_size, seed, cfg.workers, sampler, resize=cfg.resize
    )


def val_batch_size(dataset: SegDataset, cfg: DataConfig) -> int:
    """``cfg.val_batch_size`` if set, else ``cfg.batch_size`` for same-size images and 1 for mixed sizes."""
    if cfg.val_batch_size is not None:
        return cfg.val_batch_size
    return cfg.batch_size if dataset.fixed_size is not None else 1


def build_val_loader(dataset: SegDataset, cfg: DataConfig, sampler: Sampler | None = None) -> DataLoader:
    """Validation loader for ``cfg``: whole images in order (resized if ``cfg.resize``), no augmentation."""
    return build_loader(
        dataset, val_batch_size(dataset, cfg), False, None, 0, cfg.workers, sampler, resize=cfg.resize
    )


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(images - mean) / std`` per channel, for images N×3×H×W in [0, 1]; returns a new tensor."""
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean_t) / std_t
