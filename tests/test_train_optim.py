"""Optimizers, learning-rate groups by name prefix, warmup + poly/cosine schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from edgeseg.config import OptimConfig, ScheduleConfig
from edgeseg.errors import InputError
from edgeseg.train.optim import build_optimizer, build_scheduler, lr_factor, param_groups


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.backbone_extra = nn.Conv2d(4, 4, 1)  # shares the text prefix "backbone" but not the module
        self.head = nn.Conv2d(4, 2, 1)


def test_lr_mult_groups_by_module_prefix() -> None:
    net = _Net()
    adapters = nn.ModuleDict({"c4": nn.Conv2d(2, 2, 1)})
    groups = param_groups({"": net, "adapters": adapters}, 0.1, {"backbone": 0.1, "backbone.0": 0.5})
    by_name = {g["name"]: g for g in groups}
    assert by_name["backbone.0"]["lr"] == pytest.approx(0.05)  # the longest prefix wins
    assert by_name["backbone"]["lr"] == pytest.approx(0.01)
    assert {id(p) for p in by_name["backbone"]["params"]} == {id(p) for p in net.backbone[1].parameters()}
    default = {id(p) for p in by_name["default"]["params"]}
    expected = [*net.backbone_extra.parameters(), *net.head.parameters(), *adapters.parameters()]
    assert default == {id(p) for p in expected}


def test_frozen_parameters_are_left_out_and_typos_fail() -> None:
    net = _Net()
    for p in net.backbone.parameters():
        p.requires_grad_(False)
    groups = param_groups({"": net}, 0.1, {})
    assert sum(len(g["params"]) for g in groups) == 4
    with pytest.raises(InputError, match="'bakbone' matches no parameter"):
        param_groups({"": net}, 0.1, {"bakbone": 0.1})
    with pytest.raises(InputError, match="every parameter is frozen"):
        build_optimizer([], OptimConfig())


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_optimizers_and_scheduler_keep_group_ratios(name: str) -> None:
    net = _Net()
    opt = build_optimizer(param_groups({"": net}, 0.2, {"backbone": 0.1}), OptimConfig(name=name, lr=0.2))
    assert type(opt).__name__ == {"adamw": "AdamW", "sgd": "SGD"}[name]
    sched = build_scheduler(opt, ScheduleConfig(name="poly", warmup_iters=2, warmup_ratio=0.5), 5, 2)
    lrs = []
    for _ in range(10):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx([0.01, 0.1])  # warmup starts at warmup_ratio · lr in every group
    assert lrs[2] == pytest.approx([0.02, 0.2])
    assert all(a / b == pytest.approx(0.1) for a, b in lrs)
    assert lrs[-1][1] < lrs[3][1]


def test_lr_factor_shapes() -> None:
    poly = ScheduleConfig(name="poly", power=1.0, warmup_ratio=0.0)
    assert lr_factor(0, 100, 10, poly) == 0.0
    assert lr_factor(5, 100, 10, poly) == pytest.approx(0.5)
    assert lr_factor(10, 100, 10, poly) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, poly) == pytest.approx(0.5)
    cosine = ScheduleConfig(name="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, 100, 0, cosine) == pytest.approx(1.0)
    assert lr_factor(50, 100, 0, cosine) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(100, 100, 0, cosine) == pytest.approx(0.1)
    assert lr_factor(25, 100, 0, cosine) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_scheduler_state_loads_safely(tmp_path) -> None:
    net = _Net()
    opt = build_optimizer(param_groups({"": net}, 0.1, {}), OptimConfig())
    sched = build_scheduler(opt, ScheduleConfig(warmup_epochs=1), 4, 3)
    for _ in range(3):
        opt.step()
        sched.step()
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    fresh = build_scheduler(opt, ScheduleConfig(warmup_epochs=1), 4, 3)
    fresh.load_state_dict(state)
    assert fresh.last_epoch == 3
