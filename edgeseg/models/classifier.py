"""Image classifiers on the zoo's backbones, for pretraining them (``edgeseg pretrain``).

``create_classifier(backbone, num_classes)`` puts global average pooling and a linear layer on the
segmentation form of a backbone (``create_backbone(backbone, 32, width_mult)``), so the classifier's
``backbone.*`` weights have exactly the names and shapes of the ``backbone.*`` weights of every segmentation
model built on that backbone — dilation (``output_stride`` 16 or 8) changes no weight — and its checkpoint
loads into them as ``model.pretrained`` (:func:`edgeseg.train.transfer.load_pretrained`).

Classifiers are not in the segmentation registry (``list_models`` and the zoo-wide tests are about
segmentation); a checkpoint says ``model.name: classifier`` and ``model_from_checkpoint`` rebuilds it here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgeseg.errors import InputError
from edgeseg.models.backbones import BACKBONES, create_backbone

CLASSIFIER = "classifier"
"""``model.name`` of a classifier in checkpoints."""


class ImageClassifier(nn.Module):
    """``backbone`` → global average pooling of ``c5`` → dropout → ``head`` (linear): logits N×K.

    ``forward_features`` returns the logits and the backbone's stage maps, as segmentation models do, so the
    training loop and distillation code call it the same way.
    """

    model_name = CLASSIFIER

    def __init__(self, backbone: str, num_classes: int, width_mult: float, dropout: float) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
        self.backbone = create_backbone(backbone, 32, width_mult)
        self.num_classes = num_classes
        self.stride = self.backbone.stride
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.feature_channels["c5"], num_classes)
        self.feature_channels = dict(self.backbone.feature_channels)
        self.feature_strides = dict(self.backbone.feature_strides)
        self.model_kwargs: dict[str, Any] = {}

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits N×K and the stage maps ``c2``..``c5``."""
        features = self.backbone(x)
        pooled = torch.flatten(self.pool(features["c5"]), 1)
        return self.head(self.dropout(pooled)), features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits N×K for a normalized N×3×H×W batch (any H, W ≥ 32)."""
        return self.forward_features(x)[0]


def create_classifier(
    backbone: str, num_classes: int, width_mult: float = 1.0, dropout: float = 0.0
) -> ImageClassifier:
    """A classifier on zoo backbone ``backbone`` (one of ``BACKBONES``) with ``num_classes`` outputs.

    Like ``edgeseg.models.create``, the model carries ``model_name`` (``"classifier"``) and ``model_kwargs``
    (every argument), so ``create_classifier(**model.model_kwargs)`` rebuilds it. Bad arguments are an
    :class:`InputError` naming them.
    """
    if backbone not in BACKBONES:
        raise InputError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    try:
        model = ImageClassifier(backbone, int(num_classes), float(width_mult), float(dropout))
    except ValueError as err:
        raise InputError(f"cannot build a {backbone} classifier: {err}") from err
    model.model_kwargs = {
        "backbone": backbone,
        "num_classes": int(num_classes),
        "width_mult": float(width_mult),
        "dropout": float(dropout),
    }
    return model


def is_classifier(model_spec: dict[str, Any]) -> bool:
    """Whether a checkpoint's ``model`` entry (``{"name", "kwargs"}``) describes a classifier."""
    return model_spec.get("name") == CLASSIFIER
