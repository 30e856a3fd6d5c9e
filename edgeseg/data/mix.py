"""Batch-level CutMix and MixUp for segmentation, as pure functions of an explicit ``torch.Generator``.

Both return a :class:`MixedBatch`; the loss is ``lam * loss(y_a) + (1 - lam) * loss(y_b)``
(:func:`mixed_loss`). CutMix pastes a box of another sample of the batch into both image and mask, so its
targets are exact (``target_b = target_a``, ``lam = 1``); MixUp blends whole images, so it keeps both masks.
All random numbers come from ``generator`` (a CPU generator), so a run is reproducible whatever the device.

For classification, masks are label maps holding each image's class at every pixel
(:mod:`edgeseg.data.classification`); the same two functions then mix the labels, and :func:`soft_targets`
reads them back as soft labels (CutMix: by the pasted box's share of the labelled pixels; MixUp: by λ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class MixedBatch:
    """Images to feed the model and the targets to score them against: ``lam`` on ``target_a``.

    ``progress``: the fraction of the run's optimizer steps done before this batch's step (0 at the first),
    set by the training loop for objectives whose terms follow a schedule.
    """

    images: torch.Tensor
    target_a: torch.Tensor
    target_b: torch.Tensor
    lam: float
    progress: float = 0.0


def _beta(alpha: float, generator: torch.Generator, n: int = 1) -> np.ndarray:
    """``n`` draws from Beta(alpha, alpha), seeded from ``generator`` (torch has no seeded Beta sampler)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return np.random.default_rng(seed).beta(alpha, alpha, size=n)


def cutmix(
    images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator, alpha: float = 1.0
) -> MixedBatch:
    """Paste into each sample a box from another sample of the batch (a random permutation), image and mask.

    Each sample gets its own box, covering a ``1 - lam`` share of the image with ``lam ~ Beta(alpha, alpha)``
    (clipped at the borders). Images N×C×H×W, masks N×H×W; inputs are not modified.
    """
    n, _, height, width = images.shape
    perm = torch.randperm(n, generator=generator)
    lams = torch.from_numpy(_beta(alpha, generator, n))
    cut_h = (height * torch.sqrt(1.0 - lams)).long()
    cut_w = (width * torch.sqrt(1.0 - lams)).long()
    cy = torch.randint(0, height, (n,), generator=generator)
    cx = torch.randint(0, width, (n,), generator=generator)
    y0, y1 = (cy - cut_h // 2).clamp(0, height), (cy + cut_h - cut_h // 2).clamp(0, height)
    x0, x1 = (cx - cut_w // 2).clamp(0, width), (cx + cut_w - cut_w // 2).clamp(0, width)
    rows, cols = torch.arange(height), torch.arange(width)
    in_rows = (rows[None] >= y0[:, None]) & (rows[None] < y1[:, None])
    in_cols = (cols[None] >= x0[:, None]) & (cols[None] < x1[:, None])
    box = (in_rows[:, :, None] & in_cols[:, None, :]).to(images.device)
    perm = perm.to(images.device)
    mixed_images = torch.where(box[:, None], images[perm], images)
    mixed_masks = torch.where(box, masks[perm], masks)
    return MixedBatch(mixed_images, mixed_masks, mixed_masks, 1.0)


def mixup(
    images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator, alpha: float = 0.4
) -> MixedBatch:
    """Blend the batch with a permutation of itself: ``lam * x + (1 - lam) * x[perm]``, ``lam ~ Beta(α, α)``.

    ``target_a`` is ``masks``, ``target_b`` is ``masks[perm]``; inputs are not modified.
    """
    perm = torch.randperm(images.shape[0], generator=generator).to(images.device)
    lam = float(_beta(alpha, generator)[0])
    mixed = images * lam + images[perm] * (1.0 - lam)
    return MixedBatch(mixed, masks, masks[perm], lam)


def mix_batch(
    images: torch.Tensor,
    masks: torch.Tensor,
    generator: torch.Generator,
    cutmix_prob: float = 0.0,
    cutmix_alpha: float = 1.0,
    mixup_prob: float = 0.0,
    mixup_alpha: float = 0.4,
) -> MixedBatch:
    """CutMix with probability ``cutmix_prob``, then MixUp with probability ``mixup_prob`` (drawn apart).

    When both apply, MixUp blends the CutMix result, and its targets are the CutMix masks. With neither, the
    batch is returned as is (``target_b = target_a``, ``lam = 1``).
    """
    batch = MixedBatch(images, masks, masks, 1.0)
    if float(torch.rand((), generator=generator)) < cutmix_prob:
        batch = cutmix(batch.images, batch.target_a, generator, cutmix_alpha)
    if float(torch.rand((), generator=generator)) < mixup_prob:
        batch = mixup(batch.images, batch.target_a, generator, mixup_alpha)
    return batch


def mixed_loss(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], logits: torch.Tensor, batch: MixedBatch
) -> torch.Tensor:
    """``lam * loss_fn(logits, target_a) + (1 - lam) * loss_fn(logits, target_b)``; one call if lam is 1."""
    if batch.lam >= 1.0 or batch.target_b is batch.target_a:
        return loss_fn(logits, batch.target_a)
    return batch.lam * loss_fn(logits, batch.target_a) + (1.0 - batch.lam) * loss_fn(logits, batch.target_b)


def label_shares(maps: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """Per-sample share of each class among the labelled pixels: label maps N×H×W → float N×K, rows sum to 1.

    A sample with no labelled pixel gets a zero row (it then adds nothing to a soft-target loss).
    """
    n = maps.shape[0]
    flat = maps.reshape(n, -1).long()
    valid = (flat != ignore_index) & (flat >= 0) & (flat < num_classes)
    rows = torch.arange(n, device=maps.device)[:, None].expand_as(flat)
    index = (rows * num_classes + flat.clamp(0, num_classes - 1))[valid]
    counts = torch.bincount(index, minlength=n * num_classes).reshape(n, num_classes).float()
    return counts / counts.sum(1, keepdim=True).clamp(min=1.0)


def soft_targets(batch: MixedBatch, num_classes: int, ignore_index: int) -> torch.Tensor:
    """Soft labels N×K of a mixed classification batch: ``lam·shares(target_a) + (1 − lam)·shares(target_b)``.

    With class-filled label maps, CutMix gives each image its box's class in proportion to the box's area
    (within the labelled pixels) and MixUp blends the two images' labels by ``lam``, as in timm's soft-label
    ``Mixup``.
    """
    shares = label_shares(batch.target_a, num_classes, ignore_index)
    if batch.lam >= 1.0 or batch.target_b is batch.target_a:
        return shares
    return batch.lam * shares + (1.0 - batch.lam) * label_shares(batch.target_b, num_classes, ignore_index)
