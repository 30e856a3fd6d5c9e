"""Transfer learning: freezing (parameters and BatchNorm statistics) and pretrained weight loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from edgeseg.checkpoint import make_checkpoint
from edgeseg.errors import InputError
from edgeseg.models import create
from edgeseg.train.transfer import freeze, frozen_batchnorms, load_pretrained, set_train_mode


def _tiny(num_classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return create("unet", num_classes=num_classes, base_channels=8, depth=2)


def test_frozen_parameters_and_bn_statistics_do_not_change() -> None:
    model = _tiny()
    count = freeze(model, ["backbone"])
    assert count == sum(p.numel() for p in model.backbone.parameters())
    bns = frozen_batchnorms(model, ["backbone"])
    assert bns and all(any(m is b for m in model.backbone.modules()) for b in bns)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        set_train_mode(model, bns)
        assert model.training and not any(b.training for b in bns)
        loss = model(torch.randn(2, 3, 32, 32)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    for key, value in before.items():
        same = torch.equal(value, after[key])
        if key.startswith("backbone."):
            assert same, f"{key} changed although frozen"
    changed = [k for k in before if not k.startswith("backbone.") and not torch.equal(before[k], after[k])]
    assert any("running_mean" in k for k in changed)  # unfrozen BatchNorms still track statistics
    assert any(k.endswith("weight") for k in changed)


def test_freeze_unknown_name_suggests() -> None:
    with pytest.raises(InputError, match="'backbon'.*did you mean 'backbone'"):
        freeze(_tiny(), ["backbon"])


def test_torchvision_format_loads_into_backbone(tmp_path: Path) -> None:
    source = _tiny()
    state = {k: v + 1.0 if v.is_floating_point() else v for k, v in source.backbone.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(10, 4), torch.zeros(10)  # a classifier's head
    torch.save(state, tmp_path / "cls.pth")
    target = _tiny()
    report = load_pretrained(target, str(tmp_path / "cls.pth"))
    assert sorted(report.unexpected) == ["fc.bias", "fc.weight"]
    assert len(report.loaded) == len(source.backbone.state_dict()) and not report.missing
    for key, value in target.backbone.state_dict().items():
        assert torch.equal(value, state[key])
    assert "2 unexpected (fc.bias, fc.weight)" in report.summary()


def test_edgeseg_checkpoint_with_other_classes_reinitialises_the_head(tmp_path: Path) -> None:
    source = _tiny(num_classes=5)
    ckpt = make_checkpoint(source, classes=[str(i) for i in range(5)], palette=[[0, 0, 0]] * 5)
    torch.save(ckpt, tmp_path / "ckpt.pt")
    target = _tiny(num_classes=3)
    fresh_head = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("classifier")}
    report = load_pretrained(target, str(tmp_path / "ckpt.pt"))
    assert report.mismatched and all(k.startswith("classifier") for k in report.mismatched)
    own = target.state_dict()
    for key in report.loaded:
        assert torch.equal(own[key], source.state_dict()[key])
    assert any(k.startswith("decoder") for k in report.loaded)  # not only the backbone
    for key, value in fresh_head.items():
        assert torch.equal(own[key], value)


def test_bad_pretrained_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found.*missing.pth"):
        load_pretrained(_tiny(), str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.pth is not a readable weights file"):
        load_pretrained(_tiny(), str(tmp_path / "junk.pth"))
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="no pretrained weight matches"):
        load_pretrained(_tiny(), str(tmp_path / "other.pth"))
