"""Checkpoint loading refuses anything but weights, with one line that says why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from edgeseg.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from edgeseg.errors import InputError
from edgeseg.models import create
from edgeseg.train.transfer import load_pretrained


class _RunsCode:
    """An object whose unpickling would call ``os.getcwd`` (harmless, but code all the same)."""

    def __reduce__(self):
        return (os.getcwd, ())


def _code_checkpoint(path: Path) -> Path:
    torch.save({"format": "edgeseg-checkpoint", "state_dict": {}, "payload": _RunsCode()}, path)
    return path


def test_checkpoint_with_code_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _code_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(InputError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    assert "evil.pt: refused" in message
    assert "posix.getcwd" in message or "nt.getcwd" in message
    assert "edgeseg loads weights only" in message
    assert "weights_only=False" not in message
    assert info.value.exit_code == 2


def test_pretrained_weights_with_code_are_refused(tmp_path: Path) -> None:
    path = _code_checkpoint(tmp_path / "evil.pth")
    model = create("lraspp_dsnet", num_classes=3, width_mult=0.25)
    with pytest.raises(InputError, match=r"^model\.pretrained: .*evil\.pth: refused.*weights only$"):
        load_pretrained(model, str(path))


def test_junk_file_error_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="junk.pt is not a readable edgeseg checkpoint") as info:
        load_checkpoint(junk)
    assert "\n" not in str(info.value)


def test_plain_checkpoint_round_trips(tmp_path: Path) -> None:
    model = create("lraspp_dsnet", num_classes=3, width_mult=0.25)
    ckpt = make_checkpoint(model, classes=["a", "b", "c"], palette=[[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    loaded = load_checkpoint(save_checkpoint(ckpt, tmp_path / "ok.pt"))
    assert loaded["classes"] == ["a", "b", "c"]
