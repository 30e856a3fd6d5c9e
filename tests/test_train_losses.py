"""Label losses: ignore pixels, class weights, Dice, the MixUp combination, the supervised objective."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgeseg.data.mix import MixedBatch
from edgeseg.train.losses import build_loss, cross_entropy, dice_loss, label_loss


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 6, 5, generator=g)
    target = torch.randint(0, 4, (2, 6, 5), generator=g)
    return logits, target


def test_cross_entropy_ignores_pixels() -> None:
    logits, target = _data()
    masked = target.clone()
    masked[:, :3] = 255
    changed = logits.clone()
    changed[:, :, :3] = torch.randn_like(changed[:, :, :3]) * 10  # ignored pixels' logits must not matter
    a = cross_entropy(logits, masked)
    b = cross_entropy(changed, masked)
    assert torch.allclose(a, b)
    valid = masked != 255
    manual = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], target[valid])
    assert torch.allclose(a, manual)


def test_cross_entropy_all_ignored_is_zero_with_grad() -> None:
    logits, target = _data()
    logits.requires_grad_(True)
    loss = cross_entropy(logits, torch.full_like(target, 255))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_class_weights_weight_the_mean() -> None:
    logits, target = _data()
    w = torch.tensor([1.0, 0.0, 0.0, 0.0])  # only class 0 counts
    weighted = cross_entropy(logits, target, weight=w)
    only0 = target == 0
    manual = F.cross_entropy(logits.permute(0, 2, 3, 1)[only0], target[only0])
    assert torch.allclose(weighted, manual)
    assert not torch.allclose(weighted, cross_entropy(logits, target))


def test_dice_perfect_and_ignore() -> None:
    _, target = _data()
    perfect = F.one_hot(target, 4).permute(0, 3, 1, 2).float() * 50
    assert dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-4)
    wrong = F.one_hot((target + 1) % 4, 4).permute(0, 3, 1, 2).float() * 50
    assert dice_loss(wrong, target).item() > 0.9
    masked = target.clone()
    masked[0] = 255  # the first image is ignored entirely: its (wrong) logits must not count
    mixed_logits = torch.cat([wrong[:1], perfect[1:]])
    assert dice_loss(mixed_logits, masked).item() == pytest.approx(0.0, abs=1e-4)


def test_build_loss_terms_and_checks() -> None:
    assert [t.name for t in build_loss("ce+dice", dice_weight=0.5)] == ["ce", "dice"]
    assert build_loss("ce+dice", dice_weight=0.5)[1].weight == 0.5
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("focal")
    with pytest.raises(ValueError, match="3 values for 4 classes"):
        build_loss("ce", class_weights=[1, 1, 1], num_classes=4)


def test_label_loss_mixup_combination() -> None:
    logits, target_a = _data(0)
    _, target_b = _data(1)
    terms = build_loss("ce+dice", dice_weight=2.0)
    batch = MixedBatch(images=torch.zeros(1), target_a=target_a, target_b=target_b, lam=0.3)
    total, parts = label_loss(terms, logits, batch)
    ce = 0.3 * cross_entropy(logits, target_a) + 0.7 * cross_entropy(logits, target_b)
    dice = 0.3 * dice_loss(logits, target_a) + 0.7 * dice_loss(logits, target_b)
    assert torch.allclose(parts["ce"], ce) and torch.allclose(parts["dice"], dice)
    assert torch.allclose(total, ce + 2.0 * dice)
    plain = MixedBatch(images=torch.zeros(1), target_a=target_a, target_b=target_a, lam=1.0)
    total_a, _ = label_loss(terms, logits, plain)
    assert torch.allclose(total_a, cross_entropy(logits, target_a) + 2.0 * dice_loss(logits, target_a))
