"""What a pretraining step minimises: cross-entropy against the soft labels of the mixed batch."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.data.mix import soft_targets


class ClassificationObjective:
    """Soft-target cross-entropy of the logits N×K against :func:`edgeseg.data.mix.soft_targets` of the
    batch (CutMix and MixUp give soft labels), smoothed by ``label_smoothing`` as in
    ``torch.nn.CrossEntropyLoss``. The loop calls it as any objective: ``objective(model, batch)``."""

    def __init__(self, num_classes: int, ignore_index: int, label_smoothing: float = 0.0) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        logits = model(batch.images).float()
        target = soft_targets(batch, self.num_classes, self.ignore_index)
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_classes
        loss = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
        return loss, {}


def class_labels(maps: torch.Tensor) -> torch.Tensor:
    """The class of each image of a batch of unaugmented label maps (N×H×W, filled with it): N labels."""
    return maps.reshape(maps.shape[0], -1)[:, 0].long()
