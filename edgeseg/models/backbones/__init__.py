"""Backbones for segmentation: ResNet-18/34/50/101 (and their ResNet-C deep-stem forms), MobileNetV2, DSNet,
QDSNet.

A backbone's ``forward(x)`` returns ``{"c2", "c3", "c4", "c5"}`` stage maps (strides 4, 8, 16, 32, or less
when dilated) and it carries ``feature_channels``, ``feature_strides`` and ``stride`` (its output stride).
"""

from __future__ import annotations

from torch import nn

from edgeseg.models.backbones.dsnet import DSNet
from edgeseg.models.backbones.mobilenetv2 import MobileNetV2
from edgeseg.models.backbones.pretrained import LoadReport, load_pretrained_backbone
from edgeseg.models.backbones.qdsnet import QDSNet
from edgeseg.models.backbones.resnet import RESNET_LAYOUTS, ResNet, resnet

BACKBONES = (*RESNET_LAYOUTS, "mobilenetv2", "dsnet", "qdsnet")

__all__ = [
    "BACKBONES",
    "DSNet",
    "LoadReport",
    "MobileNetV2",
    "QDSNet",
    "ResNet",
    "create_backbone",
    "load_pretrained_backbone",
    "resnet",
]


def create_backbone(name: str, output_stride: int = 32, width_mult: float = 1.0) -> nn.Module:
    """Build the segmentation form (no classifier) of backbone ``name`` at ``output_stride`` 8, 16 or 32.

    ``width_mult`` scales MobileNetV2, DSNet and QDSNet; ResNets have no width multiplier and reject anything
    but 1.
    """
    if name in RESNET_LAYOUTS:
        if width_mult != 1.0:
            raise ValueError(f"{name} has no width multiplier; got width_mult={width_mult}")
        return resnet(name, output_stride=output_stride, include_top=False)
    if name == "mobilenetv2":
        return MobileNetV2(width_mult=width_mult, output_stride=output_stride, include_top=False)
    if name == "dsnet":
        return DSNet(width_mult=width_mult, output_stride=output_stride)
    if name == "qdsnet":
        return QDSNet(width_mult=width_mult, output_stride=output_stride)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
