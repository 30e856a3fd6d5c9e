"""Distillation losses as pure functions: zero at agreement, positive otherwise, ignore pixels excluded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgeseg.distill.adapters import FeatureAdapters
from edgeseg.distill.losses import (
    channelwise_kd_loss,
    feature_kd_loss,
    pixel_kd_loss,
    relation_kd_loss,
    valid_pixels,
)
from edgeseg.errors import InputError

LOGIT_LOSSES = [pixel_kd_loss, channelwise_kd_loss, relation_kd_loss]


def _logits(seed: int, shape: tuple[int, ...] = (2, 4, 6, 5)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("loss_fn", LOGIT_LOSSES)
@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_logit_loss_zero_when_equal_positive_otherwise(loss_fn, tau: float) -> None:
    t = _logits(0)
    assert loss_fn(t.clone(), t, tau=tau).item() == pytest.approx(0.0, abs=1e-6)
    assert loss_fn(_logits(1), t, tau=tau).item() > 1e-3


def test_feature_loss_zero_when_equal_positive_otherwise() -> None:
    t = _logits(0, (2, 8, 4, 4))
    assert feature_kd_loss(t.clone(), t).item() == pytest.approx(0.0, abs=1e-6)
    # the maps are normalised per pixel, so a positive rescaling of the student costs nothing
    assert feature_kd_loss(t * 5.0, t).item() == pytest.approx(0.0, abs=1e-6)
    assert feature_kd_loss(_logits(1, (2, 8, 4, 4)), t).item() > 1e-3


def test_pixel_kd_matches_kl_div_reference() -> None:
    s, t, tau = _logits(1), _logits(0), 2.0
    ref = F.kl_div(F.log_softmax(s / tau, 1), F.log_softmax(t / tau, 1), reduction="none", log_target=True)
    expected = ref.sum(1).mean() * tau**2
    assert pixel_kd_loss(s, t, tau=tau).item() == pytest.approx(expected.item(), rel=1e-5)


def test_channelwise_kd_matches_reference() -> None:
    s, t, tau = _logits(1), _logits(0), 3.0
    n, c = s.shape[:2]
    p_t = F.softmax(t.reshape(n * c, -1) / tau, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s.reshape(n * c, -1) / tau, 1))).sum(1)
    assert channelwise_kd_loss(s, t, tau=tau).item() == pytest.approx((kl.mean() * tau**2).item(), rel=1e-5)


def test_relation_kd_matches_pearson_reference() -> None:
    s, t, tau = _logits(1), _logits(0), 2.0
    c = s.shape[1]
    p_s = F.softmax(s / tau, 1).permute(0, 2, 3, 1).reshape(-1, c)
    p_t = F.softmax(t / tau, 1).permute(0, 2, 3, 1).reshape(-1, c)
    inter = torch.stack([torch.corrcoef(torch.stack([a, b]))[0, 1] for a, b in zip(p_s, p_t, strict=True)])
    intra = torch.stack([torch.corrcoef(torch.stack([p_s[:, k], p_t[:, k]]))[0, 1] for k in range(c)])
    expected = ((1 - inter.mean()) + (1 - intra.mean())) * tau**2
    assert relation_kd_loss(s, t, tau=tau).item() == pytest.approx(expected.item(), rel=1e-4)


@pytest.mark.parametrize("loss_fn", [*LOGIT_LOSSES, feature_kd_loss])
def test_ignore_pixels_do_not_contribute(loss_fn) -> None:
    t = _logits(0)
    s = _logits(1)
    valid = torch.ones(2, 6, 5, dtype=torch.bool)
    valid[:, :2] = False
    kw = {} if loss_fn is feature_kd_loss else {"tau": 2.0}
    base = loss_fn(s, t, valid=valid, **kw)
    # anything at ignored pixels, on either side, leaves the loss unchanged
    s2, t2 = s.clone(), t.clone()
    s2[:, :, :2] = torch.randn(2, 4, 2, 5) * 10
    t2[:, :, :2] = torch.randn(2, 4, 2, 5) * 10
    assert loss_fn(s2, t2, valid=valid, **kw).item() == pytest.approx(base.item(), rel=1e-5)
    # ... and no gradient reaches them
    s3 = s.clone().requires_grad_(True)
    loss_fn(s3, t, valid=valid, **kw).backward()
    assert torch.all(s3.grad[:, :, :2] == 0)
    assert torch.any(s3.grad[:, :, 2:] != 0)
    # disagreement only at ignored pixels costs nothing
    assert loss_fn(t2, t, valid=valid, **kw).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss_fn", LOGIT_LOSSES)
def test_no_valid_pixel_gives_zero_and_finite_gradient(loss_fn) -> None:
    s = _logits(1).requires_grad_(True)
    loss = loss_fn(s, _logits(0), tau=2.0, valid=torch.zeros(2, 6, 5, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(s.grad).all()


def test_gradient_does_not_reach_teacher_tensor() -> None:
    s = _logits(1).requires_grad_(True)
    t = _logits(0).requires_grad_(True)
    losses = [pixel_kd_loss(s, t), channelwise_kd_loss(s, t), relation_kd_loss(s, t), feature_kd_loss(s, t)]
    torch.stack(losses).sum().backward()
    assert s.grad is not None and t.grad is None


def test_valid_pixels_with_and_without_mixup() -> None:
    a = torch.tensor([[[0, 255], [1, 1]], [[0, 255], [1, 1]]])
    b = torch.tensor([[[255, 0], [1, 1]], [[255, 0], [1, 1]]])
    assert valid_pixels(a).tolist() == (a != 255).tolist()
    both = valid_pixels(a, b, lam=torch.tensor([0.5, 1.0]))
    assert both[0].tolist() == [[False, False], [True, True]]  # mixed: both targets must be valid
    assert both[1].tolist() == [[True, False], [True, True]]  # λ = 1: only target_a counts
    assert valid_pixels(a, b, lam=0.0)[0].tolist() == [[False, True], [True, True]]


def test_feature_loss_resizes_student_to_teacher_map() -> None:
    t = _logits(0, (2, 8, 4, 4))
    s = F.interpolate(t, size=(8, 8), mode="nearest")  # stride-2 finer student map, same content
    assert feature_kd_loss(s, t).item() < 0.05
    with pytest.raises(ValueError, match="adapter"):
        feature_kd_loss(_logits(0, (2, 3, 4, 4)), t)


def test_adapters_map_channels_and_reject_unknown_names() -> None:
    adapters = FeatureAdapters({"low": "layer1"}, {"low": 6, "high": 12}, {"layer1": 16, "layer4": 32})
    out = adapters({"low": torch.randn(2, 6, 8, 8), "high": torch.randn(2, 12, 4, 4)})
    assert list(out) == ["low"] and out["low"].shape == (2, 16, 8, 8)
    with pytest.raises(InputError, match="student has no feature 'mid'.*high"):
        FeatureAdapters({"mid": "layer1"}, {"low": 6, "high": 12}, {"layer1": 16})
    with pytest.raises(InputError, match="teacher has no feature 'layer9'"):
        FeatureAdapters({"low": "layer9"}, {"low": 6}, {"layer1": 16})
