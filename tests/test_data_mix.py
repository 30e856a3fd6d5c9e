"""CutMix and MixUp: targets, λ, determinism from the generator, and the mixed loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeseg.data import MixedBatch, cutmix, mix_batch, mixed_loss, mixup


def _batch(n: int = 6, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample k is the constant image k/10 with the constant mask k, so any pixel names its source."""
    ids = torch.arange(n)
    images = (ids.float() / 10).view(n, 1, 1, 1).expand(n, 3, size, size).clone()
    masks = ids.view(n, 1, 1).expand(n, size, size).clone()
    return images, masks


def test_cutmix_pastes_a_box_into_image_and_mask_together() -> None:
    images, masks = _batch()
    before = images.clone(), masks.clone()
    out = cutmix(images, masks, torch.Generator().manual_seed(0), alpha=1.0)
    assert torch.equal(images, before[0]) and torch.equal(masks, before[1])  # inputs untouched
    assert out.lam == 1.0 and out.target_b is out.target_a
    source = (out.images[:, 0] * 10).round().long()
    assert torch.equal(source, out.target_a)  # every pixel's image and label come from the same sample
    changed = out.target_a != masks
    assert changed.any()
    for k in range(len(masks)):
        if changed[k].any():  # the pasted region is one rectangle from one other sample
            rows, cols = changed[k].any(1).nonzero(), changed[k].any(0).nonzero()
            box = changed[k][rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            assert box.all() and changed[k].sum() == box.numel()
            assert out.target_a[k][changed[k]].unique().numel() == 1


def test_mixup_blends_images_and_keeps_both_targets() -> None:
    images, masks = _batch()
    out = mixup(images, masks, torch.Generator().manual_seed(1), alpha=0.4)
    assert 0.0 < out.lam < 1.0
    assert torch.equal(out.target_a, masks) and not torch.equal(out.target_b, masks)
    expected = out.lam * images + (1 - out.lam) * (out.target_b[:, None].float() / 10)
    assert torch.allclose(out.images, expected, atol=1e-6)


def test_generator_decides_everything() -> None:
    images, masks = _batch()
    a = mix_batch(images, masks, torch.Generator().manual_seed(7), 1.0, 1.0, 1.0, 0.4)
    b = mix_batch(images, masks, torch.Generator().manual_seed(7), 1.0, 1.0, 1.0, 0.4)
    c = mix_batch(images, masks, torch.Generator().manual_seed(8), 1.0, 1.0, 1.0, 0.4)
    assert a.lam == b.lam and torch.equal(a.images, b.images) and torch.equal(a.target_b, b.target_b)
    assert a.lam != c.lam


def test_mix_batch_probabilities() -> None:
    images, masks = _batch()
    g = torch.Generator().manual_seed(0)
    plain = mix_batch(images, masks, g, cutmix_prob=0.0, mixup_prob=0.0)
    assert plain.images is images and plain.target_a is masks and plain.target_b is masks and plain.lam == 1.0
    only_cut = mix_batch(images, masks, g, cutmix_prob=1.0, mixup_prob=0.0)
    assert only_cut.lam == 1.0 and not torch.equal(only_cut.target_a, masks)
    both = mix_batch(images, masks, g, cutmix_prob=1.0, mixup_prob=1.0)
    assert both.lam < 1.0 and not torch.equal(both.target_a, masks)  # MixUp over the CutMix masks
    small_images, small_masks = _batch(2, 4)
    counts = [mix_batch(small_images, small_masks, g, 0.3).target_a is not small_masks for _ in range(200)]
    assert 30 < sum(counts) < 90


def test_mixed_loss_weights_both_targets_by_lambda() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 8, 8)
    a, b = torch.randint(0, 4, (2, 8, 8)), torch.randint(0, 4, (2, 8, 8))
    loss = mixed_loss(F.cross_entropy, logits, MixedBatch(logits, a, b, 0.3))
    expected = 0.3 * F.cross_entropy(logits, a) + 0.7 * F.cross_entropy(logits, b)
    assert torch.allclose(loss, expected)
    assert not torch.allclose(loss, F.cross_entropy(logits, a))
    assert torch.allclose(
        mixed_loss(F.cross_entropy, logits, MixedBatch(logits, a, a, 1.0)), F.cross_entropy(logits, a)
    )
