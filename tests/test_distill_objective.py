"""The distillation objective with tiny real models: frozen teacher, gradients, parts, same batch."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from edgeseg.data.mix import MixedBatch
from edgeseg.distill.adapters import FeatureAdapters
from edgeseg.distill.config import DistillConfig, LossWeights
from edgeseg.distill.objective import DistillObjective
from edgeseg.errors import InputError
from edgeseg.models import create
from edgeseg.train.losses import build_loss
from edgeseg.train.objective import FeatureForward

NUM_CLASSES = 3
PAIRS = {"c1": "c1", "decoder": "decoder"}


def _models() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    teacher = create("unet", num_classes=NUM_CLASSES, base_channels=8, depth=2)
    student = create("unet_ds", num_classes=NUM_CLASSES, width_mult=0.25, depth=2)
    return teacher, student


def _batch(lam: float = 1.0) -> MixedBatch:
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, NUM_CLASSES, (2, 32, 32), generator=g)
    target[:, :4] = 255
    other = torch.roll(target, 5, dims=2)
    return MixedBatch(torch.randn(2, 3, 32, 32, generator=g), target, other if lam < 1 else target, lam)


def _objective(teacher, student, weights: LossWeights, pairs=PAIRS) -> DistillObjective:
    cfg = DistillConfig(teacher="unused.pt", weights=weights, kd_tau=2.0, cwd_tau=4.0, feature_pairs=pairs)
    adapters = None
    if weights.feature > 0:
        adapters = FeatureAdapters(pairs, student.feature_channels, teacher.feature_channels)
    return DistillObjective(teacher, cfg, build_loss("ce"), adapters=adapters)


ALL = LossWeights(ce=1.0, kd=1.0, cwd=0.5, feature=2.0, relation=0.3)


def test_parts_are_logged_and_sum_to_total() -> None:
    teacher, student = _models()
    objective = _objective(teacher, student, ALL)
    total, parts = objective(FeatureForward(student.train()), _batch(lam=0.7))
    assert set(parts) == {"ce", "kd", "cwd", "feature", "relation"}
    assert all(v.item() > 0 for v in parts.values())
    expected = parts["ce"] + parts["kd"] + 0.5 * parts["cwd"] + 2.0 * parts["feature"]
    expected = expected + 0.3 * parts["relation"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_zero_weight_terms_are_skipped_and_ce_only_never_runs_the_teacher() -> None:
    teacher, student = _models()
    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(1))
    _, parts = _objective(teacher, student, LossWeights(ce=1.0, kd=0.0))(FeatureForward(student), _batch())
    assert set(parts) == {"ce"} and calls == []
    _, parts = _objective(teacher, student, LossWeights(ce=0.0, kd=1.0))(FeatureForward(student), _batch())
    assert set(parts) == {"kd"} and calls == [1]


@pytest.mark.parametrize("weights", [LossWeights(kd=1.0, cwd=1.0), ALL])
def test_teacher_sees_exactly_the_students_batch(weights: LossWeights) -> None:
    teacher, student = _models()
    seen: dict[str, torch.Tensor] = {}
    for name, model in (("teacher", teacher), ("student", student)):
        original = model.forward_features

        def record(x, _name=name, _original=original):
            seen[_name] = x
            return _original(x)

        model.forward_features = record
    batch = _batch(lam=0.6)
    _objective(teacher, student, weights)(FeatureForward(student), batch)
    assert torch.equal(seen["teacher"], batch.images) and torch.equal(seen["student"], batch.images)


def test_gradients_reach_only_student_and_adapters_and_teacher_is_unchanged() -> None:
    teacher, student = _models()
    teacher.train()  # the objective must freeze it anyway
    before = copy.deepcopy(teacher.state_dict())
    objective = _objective(teacher, student, ALL)
    objective.train()
    assert not teacher.training
    params = list(student.parameters()) + list(objective.adapters.parameters())
    optimizer = torch.optim.SGD(params, lr=0.01)
    student.train()
    for _ in range(2):
        optimizer.zero_grad()
        total, _ = objective(FeatureForward(student), _batch(lam=0.5))
        total.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in objective.adapters.parameters())
        assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
        optimizer.step()
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics


def test_teacher_equal_to_student_gives_zero_distillation_terms() -> None:
    _, student = _models()
    teacher = copy.deepcopy(student)
    pairs = {"c2": "c2", "decoder": "decoder"}
    weights = LossWeights(ce=0.0, kd=1.0, cwd=1.0, feature=1.0, relation=1.0)
    objective = _objective(teacher, student, weights, pairs)
    with torch.no_grad():
        for conv in objective.adapters.convs.values():
            conv.weight.copy_(torch.eye(conv.in_channels)[:, :, None, None])
            conv.bias.zero_()
    total, parts = objective(FeatureForward(student.eval()), _batch(lam=0.5))
    assert total.item() == pytest.approx(0.0, abs=1e-5)
    assert all(v.item() == pytest.approx(0.0, abs=1e-5) for v in parts.values())


def test_feature_weight_without_adapters_is_refused() -> None:
    teacher, _ = _models()
    cfg = DistillConfig(teacher="t.pt", weights=LossWeights(feature=1.0), feature_pairs={"c1": "c1"})
    with pytest.raises(ValueError, match="FeatureAdapters"):
        DistillObjective(teacher, cfg, build_loss("ce"))


def test_different_strides_and_odd_sizes() -> None:
    torch.manual_seed(0)
    teacher = create("unet", num_classes=NUM_CLASSES, base_channels=8, depth=2)  # pads to 4
    student = create("lraspp_dsnet", num_classes=NUM_CLASSES, width_mult=0.25)  # pads to 16
    pairs = {"c3": "c1", "decoder": "decoder"}
    objective = _objective(teacher, student, ALL, pairs)
    g = torch.Generator().manual_seed(2)
    target = torch.randint(0, NUM_CLASSES, (2, 37, 43), generator=g)
    batch = MixedBatch(torch.randn(2, 3, 37, 43, generator=g), target, target, 1.0)
    total, parts = objective(FeatureForward(student), batch)
    assert torch.isfinite(total) and set(parts) == {"ce", "kd", "cwd", "feature", "relation"}
    total.backward()
    assert all(p.grad is not None for p in objective.adapters.parameters())


def test_logit_stride_compares_window_averages_and_drops_windows_with_ignored_pixels() -> None:
    from edgeseg.distill.objective import pool_logits

    g = torch.Generator().manual_seed(3)
    student = torch.randn(1, NUM_CLASSES, 10, 9, generator=g)
    # a teacher that differs from the student inside 4×4 windows but has the same window averages
    wiggle = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(5, 5)[:10, :9]
    wiggle[8:, :] = 0  # the last, partial windows (rows 8-9, column 8) keep their average only if flat
    wiggle[:, 8:] = 0
    teacher = student + wiggle
    valid = torch.ones(1, 10, 9, dtype=torch.bool)
    valid[0, 0, 0] = False
    s, t, v = pool_logits(student, teacher, valid, 4)
    assert s.shape == t.shape == (1, NUM_CLASSES, 3, 3) and v.shape == (1, 3, 3)
    assert torch.allclose(s, t, atol=1e-6)
    assert not v[0, 0, 0] and v.sum() == 8  # the window holding the ignored pixel is left out

    teacher_model, student_model = _models()
    weights = LossWeights(ce=0.0, kd=1.0, cwd=1.0, relation=1.0)
    cfg = DistillConfig(teacher="unused.pt", weights=weights, logit_stride=4)
    objective = DistillObjective(teacher_model, cfg, build_loss("ce"))
    total, parts = objective(FeatureForward(student_model.train()), _batch())
    assert set(parts) == {"kd", "cwd", "relation"} and all(v.item() > 0 for v in parts.values())
    total.backward()
    assert all(p.grad is None for p in teacher_model.parameters())


@pytest.mark.parametrize("stride", [0, -2, 1.5, True])
def test_logit_stride_must_be_a_positive_integer(stride) -> None:
    with pytest.raises(InputError, match="logit_stride"):
        DistillConfig(teacher="t.pt", logit_stride=stride)


def test_teacher_terms_follow_teacher_until_and_decay() -> None:
    """Early-stopped KD: the teacher terms' weights scale with the step's progress, and past
    ``teacher_until`` the teacher does not run and only the label loss is left."""
    teacher, student = _models()
    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(1))
    weights = LossWeights(ce=1.0, kd=1.0, cwd=0.5)
    cfg = DistillConfig(teacher="unused.pt", weights=weights, teacher_until=0.5, teacher_decay="linear")
    objective = DistillObjective(teacher, cfg, build_loss("ce"))
    batch = _batch()
    full, parts = objective(FeatureForward(student), dataclasses.replace(batch, progress=0.0))
    assert full.item() == pytest.approx((parts["ce"] + parts["kd"] + 0.5 * parts["cwd"]).item(), rel=1e-5)
    half, parts = objective(FeatureForward(student), dataclasses.replace(batch, progress=0.25))
    expected = parts["ce"] + 0.5 * (parts["kd"] + 0.5 * parts["cwd"])
    assert half.item() == pytest.approx(expected.item(), rel=1e-5)
    assert len(calls) == 2
    late, parts = objective(FeatureForward(student), dataclasses.replace(batch, progress=0.5))
    assert set(parts) == {"ce"} and len(calls) == 2
    assert late.item() == pytest.approx(parts["ce"].item(), rel=1e-6)


def test_teacher_scale_constant_and_bad_values() -> None:
    cfg = DistillConfig(teacher="t.pt", teacher_until=0.75)
    assert [cfg.teacher_scale(p) for p in (0.0, 0.74, 0.75, 0.9)] == [1.0, 1.0, 0.0, 0.0]
    assert DistillConfig(teacher="t.pt").teacher_scale(0.999) == 1.0
    for bad in (0, 1.5, -0.1, True):
        with pytest.raises(InputError, match="distill.teacher_until"):
            DistillConfig(teacher="t.pt", teacher_until=bad)
    with pytest.raises(InputError, match="distill.teacher_decay.*'cosine'"):
        DistillConfig(teacher="t.pt", teacher_decay="cosine")
