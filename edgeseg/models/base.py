"""``SegmentationModel``: the base every edgeseg architecture derives from.

It owns the size contract: ``forward`` pads the input bottom/right with zeros to a multiple of ``stride``,
runs the architecture's ``forward_padded`` and crops the logits back, so any H, W ≥ 32 (odd too) gives N×C×H×W
logits. The pad amounts are computed from the traced input shape with plain arithmetic (no Python branches),
which keeps both ONNX exporters (TorchScript with ``dynamic_axes`` and dynamo with ``dynamic_shapes``)
producing a graph that accepts any height and width. (Calling ``torch.export.export`` directly needs
``prefer_deferred_runtime_asserts_over_guards=True``, as ``torch.onnx.export(dynamo=True)`` passes: the
symbolic solver cannot prove ``H <= ceil(H / stride) * stride`` for the crop, and the dynamo graph names the
output dims ``Min(height, ...)``, which equal the input's at run time.)

Feature maps for distillation come from ``forward_features``; every model names the last hidden map before
its classifier ``"decoder"`` and the backbone stages ``"c<k>"`` (stride 2**k); DeepLab models add ``"aspp"``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class SegmentationModel(nn.Module):
    """Base class: subclasses set ``backbone`` and their head modules and implement ``forward_padded``.

    Attributes: ``num_classes``; ``stride`` (the input is padded to a multiple of it);
    ``feature_channels`` / ``feature_strides`` (name → channels / stride relative to the input) for the maps
    that ``forward_features`` returns; ``model_name`` / ``model_kwargs`` (set by ``edgeseg.models.create``).
    """

    model_name: str = ""
    model_kwargs: dict[str, Any]

    def __init__(self, num_classes: int, stride: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.stride = stride
        self.model_kwargs = {}
        self.feature_channels: dict[str, int] = {}
        self.feature_strides: dict[str, int] = {}

    def forward_padded(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits at ``x``'s size and named feature maps; ``x``'s H and W are multiples of ``stride``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits N×C×H×W for a normalized N×3×H×W image batch."""
        return self.forward_features(x)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits (as ``forward``) and the named intermediate maps of the padded input.

        Maps are computed on the input padded to a multiple of ``stride``, so a map of stride s has
        ``ceil(H / stride) * stride / s`` rows; models with different strides may differ by a row or column.
        """
        height, width = x.shape[-2], x.shape[-1]
        padded_height = (height + self.stride - 1) // self.stride * self.stride
        padded_width = (width + self.stride - 1) // self.stride * self.stride
        x = F.pad(x, (0, padded_width - width, 0, padded_height - height))
        logits, features = self.forward_padded(x)
        return logits[:, :, :height, :width], features

    def _set_features(self, channels: dict[str, int], strides: dict[str, int]) -> None:
        self.feature_channels = dict(channels)
        self.feature_strides = dict(strides)
