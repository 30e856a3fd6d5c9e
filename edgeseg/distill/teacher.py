"""Loading the frozen teacher of a distillation run from an ordinary edgeseg checkpoint."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def load_teacher(
    path: str | os.PathLike,
    *,
    classes: Sequence[str],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Load the teacher checkpoint at ``path`` frozen on ``device``; return ``(model, checkpoint)``.

    The teacher sees exactly the student's normalized batch, so its classes must be the data's ``classes``
    (same names, same order) and, when given, its normalization ``mean``/``std`` must be the student's.
    A missing or unreadable file, or any mismatch, raises :class:`InputError` naming the path.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"teacher checkpoint not found: {p} (set distill.teacher, or train the teacher)")
    try:
        ckpt = load_checkpoint(p)
    except InputError as err:
        raise InputError(f"teacher checkpoint {p} cannot be used: {err}") from err
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
                f"teacher checkpoint {p} normalizes with {name}={list(have)}, the student with {list(want)}; "
                "they must match because the teacher sees the student's normalized batch"
            )
    try:
        model = model_from_checkpoint(ckpt)
    except Exception as err:  # unknown model name, wrong state_dict: the file is not a usable teacher
        raise InputError(f"teacher checkpoint {p} cannot be rebuilt: {err}") from err
    if not hasattr(model, "forward_features"):
        raise InputError(f"teacher checkpoint {p}: model {ckpt['model']['name']!r} has no forward_features")
    return freeze(model.to(device)), ckpt


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(abs(float(x) - float(y)) < 1e-6 for x, y in zip(a, b, strict=True))
