"""Load pretrained weights into a segmentation backbone.

Accepts a torchvision-format classification ``state_dict`` (its classifier keys — ``fc.*``, MobileNetV2's
``classifier.*`` and ``features.18.*`` — are ignored and reported as unexpected), or an edgeseg model's
``state_dict`` / checkpoint, whose ``backbone.*`` keys are used (the rest is reported as unexpected).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edgeseg.errors import InputError


@dataclass
class LoadReport:
    """What ``load_pretrained_backbone`` did: keys loaded, backbone keys left missing, source keys ignored."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def load_pretrained_backbone(backbone: nn.Module, state_dict: Mapping[str, Any]) -> LoadReport:
    """Copy matching tensors of ``state_dict`` into ``backbone``; report loaded, missing and unexpected keys.

    ``state_dict`` may also be an edgeseg checkpoint dict (its ``state_dict`` entry is used). Raises
    ``InputError`` when a key matches with a different shape or when nothing matches at all (wrong weights).
    """
    if isinstance(state_dict.get("state_dict"), Mapping):
        state_dict = state_dict["state_dict"]
    source = dict(state_dict)
    unexpected: list[str] = []
    if any(key.startswith("backbone.") for key in source):
        unexpected = [key for key in source if not key.startswith("backbone.")]
        source = {
            key[len("backbone.") :]: value for key, value in source.items() if key.startswith("backbone.")
        }
    target = backbone.state_dict()
    matched: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key not in target:
            unexpected.append(key)
            continue
        if not isinstance(value, torch.Tensor) or value.shape != target[key].shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            expected = tuple(target[key].shape)
            raise InputError(f"pretrained weight {key!r} has shape {shape}, the backbone expects {expected}")
        matched[key] = value
    if not matched:
        raise InputError(
            f"no pretrained weight matches the backbone ({type(backbone).__name__}); "
            f"first keys given: {', '.join(list(state_dict)[:3])}"
        )
    backbone.load_state_dict(matched, strict=False)
    missing = [key for key in target if key not in matched]
    return LoadReport(loaded=sorted(matched), missing=missing, unexpected=sorted(unexpected))
