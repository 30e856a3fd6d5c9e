"""Segmentation losses as pure functions of (logits N×C×H×W, integer target N×H×W).

Every loss ignores pixels labelled ``ignore_index`` and returns a zero that still carries a gradient when a
batch has no valid pixel (rather than NaN). :func:`label_loss` scores a MixUp batch against its two targets
as ``λ·L(y_a) + (1−λ)·L(y_b)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from edgeseg.data.mix import MixedBatch, mixed_loss
from edgeseg.runtime.metadata import IGNORE_INDEX


def cross_entropy(
    logits: Tensor, target: Tensor, *, ignore_index: int = IGNORE_INDEX, weight: Tensor | None = None
) -> Tensor:
    """Pixel-wise cross-entropy averaged over valid pixels (weighted by ``weight[class]`` when given)."""
    if not bool((target != ignore_index).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index)


def dice_loss(
    logits: Tensor, target: Tensor, *, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0
) -> Tensor:
    """Soft Dice loss ``1 − mean_c (2·Σ p·g + s) / (Σ p + Σ g + s)`` over valid pixels of the whole batch.

    Classes absent from both target and prediction score 1 (no penalty) thanks to the smoothing term.
    """
    num_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)
    probs = logits.float().softmax(dim=1) * valid
    onehot = F.one_hot(target.masked_fill(~valid.squeeze(1), 0), num_classes).permute(0, 3, 1, 2)
    onehot = onehot.to(probs.dtype) * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return 1.0 - ((2.0 * inter + smooth) / (denom + smooth)).mean()


@dataclass
class LossTerm:
    """One named part of the label loss: ``weight · fn(logits, target)``."""

    name: str
    weight: float
    fn: Callable[[Tensor, Tensor], Tensor]


def build_loss(
    kind: str,
    *,
    ignore_index: int = IGNORE_INDEX,
    class_weights: list[float] | None = None,
    dice_weight: float = 1.0,
    num_classes: int | None = None,
) -> list[LossTerm]:
    """The terms of ``train.loss``: ``ce``, ``dice`` or ``ce+dice`` (CE + ``dice_weight``·Dice)."""
    if kind not in ("ce", "dice", "ce+dice"):
        raise ValueError(f"unknown loss '{kind}' (choose ce, dice or ce+dice)")
    if class_weights is not None and num_classes is not None and len(class_weights) != num_classes:
        raise ValueError(f"train.class_weights has {len(class_weights)} values for {num_classes} classes")
    weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)

    def ce(logits: Tensor, target: Tensor) -> Tensor:
        w = None if weights is None else weights.to(logits.device)
        return cross_entropy(logits, target, ignore_index=ignore_index, weight=w)

    def dice(logits: Tensor, target: Tensor) -> Tensor:
        return dice_loss(logits, target, ignore_index=ignore_index)

    terms = []
    if "ce" in kind:
        terms.append(LossTerm("ce", 1.0, ce))
    if "dice" in kind:
        terms.append(LossTerm("dice", dice_weight, dice))
    return terms


def label_loss(terms: list[LossTerm], logits: Tensor, batch: MixedBatch) -> tuple[Tensor, dict[str, Tensor]]:
    """Total weighted label loss and its parts for a (possibly MixUp-mixed) batch.

    Each term is ``λ·L(y_a) + (1−λ)·L(y_b)`` (``edgeseg.data.mix.mixed_loss``), so MixUp is scored against
    both blended masks; without MixUp it is ``L(y_a)``.
    """
    parts = {t.name: mixed_loss(t.fn, logits, batch) for t in terms}
    total = sum((t.weight * parts[t.name] for t in terms), logits.new_zeros(()))
    return total, parts
