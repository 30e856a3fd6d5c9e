"""DeepLabV3 and DeepLabV3+ (Chen et al., 2017/2018) on a selectable, dilated backbone.

DeepLabV3: ASPP over the backbone's last map (output stride 16 or 8), a 3×3 conv, a 1×1 classifier, one
bilinear upsampling. DeepLabV3+ adds a decoder: the ASPP map upsampled to stride 4, concatenated with the
stride-4 map projected to ``low_level_channels`` by 1×1, two 3×3 convs, classifier at stride 4, bilinear ×4.
``separable`` makes the ASPP branches and the 3×3 convs depthwise-separable. The default teacher is
``deeplabv3plus`` with ResNet-50 at output stride 16.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgeseg.models.backbones import create_backbone
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ASPP, ConvBNAct, conv_block, upsample
from edgeseg.models.registry import register_model

DEFAULT_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


def _check_output_stride(output_stride: int) -> None:
    if output_stride not in DEFAULT_RATES:
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")


class DeepLabV3(SegmentationModel):
    """ASPP head over a dilated backbone; logits at the output stride, upsampled bilinearly once."""

    def __init__(
        self,
        num_classes: int,
        backbone: str,
        output_stride: int,
        aspp_channels: int,
        atrous_rates: Sequence[int] | None,
        separable: bool,
        width_mult: float,
    ) -> None:
        _check_output_stride(output_stride)
        super().__init__(num_classes, stride=output_stride)
        self.backbone = create_backbone(backbone, output_stride, width_mult)
        rates = DEFAULT_RATES[output_stride] if atrous_rates is None else tuple(atrous_rates)
        self.aspp = ASPP(self.backbone.feature_channels["c5"], aspp_channels, rates, separable)
        self.decoder = conv_block(aspp_channels, aspp_channels, separable)
        self.classifier = nn.Conv2d(aspp_channels, num_classes, 1)
        strides = self.backbone.feature_strides
        self._set_features(
            {**self.backbone.feature_channels, "aspp": aspp_channels, "decoder": aspp_channels},
            {**strides, "aspp": strides["c5"], "decoder": strides["c5"]},
        )

    def forward_padded(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Backbone → ASPP → 3×3 conv → classifier → bilinear upsampling to the input size."""
        features = self.backbone(x)
        context = self.aspp(features["c5"])
        hidden = self.decoder(context)
        logits = upsample(self.classifier(hidden), self.feature_strides["c5"])
        return logits, {**features, "aspp": context, "decoder": hidden}


class DeepLabV3Plus(SegmentationModel):
    """DeepLabV3 with a decoder on the stride-4 map; logits at stride 4, upsampled bilinearly once."""

    def __init__(
        self,
        num_classes: int,
        backbone: str,
        output_stride: int,
        aspp_channels: int,
        atrous_rates: Sequence[int] | None,
        separable: bool,
        width_mult: float,
        low_level_channels: int,
        decoder_channels: int,
    ) -> None:
        _check_output_stride(output_stride)
        super().__init__(num_classes, stride=output_stride)
        self.backbone = create_backbone(backbone, output_stride, width_mult)
        channels = self.backbone.feature_channels
        rates = DEFAULT_RATES[output_stride] if atrous_rates is None else tuple(atrous_rates)
        self.aspp = ASPP(channels["c5"], aspp_channels, rates, separable)
        self.low_level = ConvBNAct(channels["c2"], low_level_channels, 1)
        self.decoder = nn.Sequential(
            conv_block(aspp_channels + low_level_channels, decoder_channels, separable),
            conv_block(decoder_channels, decoder_channels, separable),
        )
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)
        strides = self.backbone.feature_strides
        self._set_features(
            {**channels, "aspp": aspp_channels, "decoder": decoder_channels},
            {**strides, "aspp": strides["c5"], "decoder": strides["c2"]},
        )

    def forward_padded(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Backbone → ASPP → fuse with stride-4 features → classifier at stride 4 → bilinear ×4."""
        features = self.backbone(x)
        context = self.aspp(features["c5"])
        low = self.low_level(features["c2"])
        strides = self.feature_strides
        hidden = self.decoder(torch.cat([upsample(context, strides["c5"] // strides["c2"]), low], dim=1))
        logits = upsample(self.classifier(hidden), strides["c2"])
        return logits, {**features, "aspp": context, "decoder": hidden}


@register_model
def deeplabv3(
    num_classes: int = 21,
    backbone: str = "resnet50",
    output_stride: int = 16,
    aspp_channels: int = 256,
    atrous_rates: Sequence[int] | None = None,
    separable: bool = False,
    width_mult: float = 1.0,
) -> DeepLabV3:
    """DeepLabV3; ``atrous_rates`` defaults to (6, 12, 18) at output stride 16 and (12, 24, 36) at 8."""
    return DeepLabV3(num_classes, backbone, output_stride, aspp_channels, atrous_rates, separable, width_mult)


@register_model
def deeplabv3plus(
    num_classes: int = 21,
    backbone: str = "resnet50",
    output_stride: int = 16,
    aspp_channels: int = 256,
    atrous_rates: Sequence[int] | None = None,
    separable: bool = False,
    width_mult: float = 1.0,
    low_level_channels: int = 48,
    decoder_channels: int = 256,
) -> DeepLabV3Plus:
    """DeepLabV3+, the default teacher (ResNet-50, output stride 16)."""
    return DeepLabV3Plus(
        num_classes,
        backbone,
        output_stride,
        aspp_channels,
        atrous_rates,
        separable,
        width_mult,
        low_level_channels,
        decoder_channels,
    )
