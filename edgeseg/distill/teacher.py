"""The frozen teacher of a distillation run from an ordinary edgeseg checkpoint, and the :class:`Teacher`
protocol that an ONNX teacher (``edgeseg.distill.onnx_teacher``) follows too."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from edgeseg.checkpoint import load_checkpoint, model_from_checkpoint
from edgeseg.errors import InputError


def freeze(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode with no parameter requiring a gradient; return it."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class Teacher(Protocol):
    """A teacher file opened but not yet built: ``check`` compares it with the student's data and
    normalization (raising :class:`InputError` naming the file) and returns the frozen model to distil from,
    called with the student's normalized batch; ``describe`` names it in one line."""

    def check(self, *, classes: Sequence[str], mean: Sequence[float], std: Sequence[float]) -> nn.Module: ...

    def describe(self) -> str: ...


class CheckpointTeacher:
    """A teacher from an edgeseg checkpoint (read at once; the model is built by :meth:`check`)."""

    def __init__(self, path: Path, ckpt: dict[str, Any]) -> None:
        self.path, self.ckpt = path, ckpt

    def describe(self) -> str:
        return f"{self.ckpt['model']['name']} from {self.path}"

    def check(
        self,
        *,
        classes: Sequence[str],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        device: torch.device | str = "cpu",
    ) -> nn.Module:
        """The frozen model on ``device``, once its classes and normalization are the student's.

        The teacher sees exactly the student's normalized batch, so its classes must be the data's
        ``classes`` (same names, same order) and, when given, its ``mean``/``std`` must be the student's.
        """
        p, ckpt = self.path, self.ckpt
        teacher_classes = list(ckpt.get("classes", []))
        if teacher_classes != list(classes):
            raise InputError(
                f"teacher checkpoint {p} was trained on {len(teacher_classes)} classes {teacher_classes}, "
                f"but the data has {len(classes)} classes {list(classes)}"
            )
        for name, want in (("mean", mean), ("std", std)):
            have = ckpt[name]  # load_checkpoint guarantees it
            if want is not None and not _close(have, want):
                raise InputError(
                    f"teacher checkpoint {p} normalizes with {name}={list(have)}, the student with "
                    f"{list(want)}; they must match because the teacher sees the student's normalized batch "
                    "(an ONNX export of the teacher is re-normalized for it)"
                )
        try:
            model = model_from_checkpoint(ckpt)
        except Exception as err:  # unknown model name, wrong state_dict: the file is not a usable teacher
            raise InputError(f"teacher checkpoint {p} cannot be rebuilt: {err}") from err
        if not hasattr(model, "forward_features"):
            name = ckpt["model"]["name"]
            raise InputError(f"teacher checkpoint {p}: model {name!r} has no forward_features")
        return freeze(model.to(device))


MISSING_TEACHER = "teacher checkpoint not found: {path} (set distill.teacher, or train the teacher)"


def read_teacher(path: str | os.PathLike, missing: str = MISSING_TEACHER) -> CheckpointTeacher:
    """Read the teacher checkpoint at ``path``; a missing or unreadable file raises :class:`InputError`
    (a missing one with ``missing``, formatted with ``path``: the hint fits the key that named the file)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(missing.format(path=p))
    try:
        ckpt = load_checkpoint(p)
    except InputError as err:
        raise InputError(f"teacher checkpoint {p} cannot be used: {err}") from err
    return CheckpointTeacher(p, ckpt)


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(abs(float(x) - float(y)) < 1e-6 for x, y in zip(a, b, strict=True))
