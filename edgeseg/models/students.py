"""Compact students for the edge.

Designed to quantize well to INT8 with ONNX Runtime: ReLU/ReLU6 only (no hard-swish, no squeeze-excitation in
the backbones), widths in multiples of 16 where the design is ours, logits computed at stride 8 or 4 and
upsampled bilinearly once at the end so little float work happens at full resolution.

- ``lraspp_dsnet``: DSNet backbone + LR-ASPP head — the smallest member.
- ``lraspp_mobilenetv2``: MobileNetV2 (ReLU6) + LR-ASPP head.
- ``deeplabv3plus_mobilenetv2``: DeepLabV3+ on MobileNetV2 with separable ASPP and decoder.
- ``fpn_qdsnet``: QDSNet (full 3×3 convolutions at strides 4 and 8, depthwise-separable blocks at 16 and 32)
  + a light FPN decoder without a sigmoid gate — the student laid out for INT8 on AVX2-only CPUs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgeseg.models.backbones import create_backbone
from edgeseg.models.backbones.qdsnet import QDSNet
from edgeseg.models.base import SegmentationModel
from edgeseg.models.deeplab import DeepLabV3Plus
from edgeseg.models.layers import ConvBNAct, upsample
from edgeseg.models.registry import register_model


class LRASPPHead(nn.Module):
    """Lite R-ASPP (Howard et al., MobileNetV3): a 1×1 ConvBNAct of the high-level map gated by a sigmoid of
    its global average (one 1×1 conv), upsampled to the low-level map; classifiers on both added.

    Weights: ``H·i`` (1×1) + ``H·i`` (gate) + ``L·C + C`` + ``i·C + C`` for H high-level, L low-level,
    i inner channels and C classes.
    """

    def __init__(
        self, low_channels: int, high_channels: int, num_classes: int, inter_channels: int, factor: int
    ) -> None:
        super().__init__()
        self.factor = factor
        self.cbr = ConvBNAct(high_channels, inter_channels, 1)
        self.scale = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_channels, inter_channels, 1, bias=False), nn.Sigmoid()
        )
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at the low-level map's stride and the gated high-level map (``factor`` times coarser)."""
        gated = self.cbr(high) * self.scale(high)
        logits = self.low_classifier(low) + self.high_classifier(upsample(gated, self.factor))
        return logits, gated


class LRASPP(SegmentationModel):
    """Backbone + LR-ASPP head on ``c3`` (stride 8) and ``c5``; logits at stride 8, bilinear ×8 once."""

    def __init__(
        self, num_classes: int, backbone: str, output_stride: int, width_mult: float, inter_channels: int
    ) -> None:
        body = create_backbone(backbone, output_stride, width_mult)
        super().__init__(num_classes, stride=body.stride)
        self.backbone = body
        channels, strides = body.feature_channels, body.feature_strides
        factor = strides["c5"] // strides["c3"]
        self.head = LRASPPHead(channels["c3"], channels["c5"], num_classes, inter_channels, factor)
        self._set_features({**channels, "decoder": inter_channels}, {**strides, "decoder": strides["c5"]})

    def forward_padded(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Backbone → LR-ASPP at stride 8 → bilinear upsampling to the input size."""
        features = self.backbone(x)
        logits, gated = self.head(features["c3"], features["c5"])
        return upsample(logits, self.feature_strides["c3"]), {**features, "decoder": gated}


@register_model
def lraspp_dsnet(
    num_classes: int = 21, width_mult: float = 1.0, output_stride: int = 16, inter_channels: int = 128
) -> LRASPP:
    """The smallest student: DSNet + LR-ASPP (about 0.5 GFLOPs at 512×512)."""
    return LRASPP(num_classes, "dsnet", output_stride, width_mult, inter_channels)


@register_model
def lraspp_mobilenetv2(
    num_classes: int = 21, width_mult: float = 1.0, output_stride: int = 16, inter_channels: int = 128
) -> LRASPP:
    """MobileNetV2 (ReLU6, no features.18) + LR-ASPP, as torchvision's LR-ASPP but INT8-friendly."""
    return LRASPP(num_classes, "mobilenetv2", output_stride, width_mult, inter_channels)


@register_model
def deeplabv3plus_mobilenetv2(
    num_classes: int = 21,
    width_mult: float = 1.0,
    output_stride: int = 16,
    aspp_channels: int = 128,
    atrous_rates: Sequence[int] | None = None,
    low_level_channels: int = 48,
    decoder_channels: int = 128,
) -> DeepLabV3Plus:
    """DeepLabV3+ on MobileNetV2 with separable ASPP and decoder, 128-channel head."""
    return DeepLabV3Plus(
        num_classes,
        "mobilenetv2",
        output_stride,
        aspp_channels,
        atrous_rates,
        True,
        width_mult,
        low_level_channels,
        decoder_channels,
    )


class FPNLiteHead(nn.Module):
    """Light FPN decoder: 1×1 ConvBNAct lateral projections of ``c5``, ``c4`` and ``c3`` to ``channels``,
    summed top-down (bilinear upsampling between strides), one full 3×3 ConvBNAct at the ``c3`` stride and a
    1×1 classifier. No global-pooling sigmoid gate (LR-ASPP's squeeze-excitation-like branch): only
    convolutions, additions and small upsamplings, all of which run in INT8.

    Weights: ``(C5 + C4 + C3)·d`` (laterals) + ``9·d·d`` (fuse) + ``d·K + K`` for K classes.
    """

    def __init__(
        self, in_channels: Sequence[int], factors: Sequence[int], num_classes: int, channels: int
    ) -> None:
        super().__init__()
        self.factors = tuple(factors)
        self.laterals = nn.ModuleList(ConvBNAct(c, channels, 1) for c in in_channels)
        self.fuse = ConvBNAct(channels, channels, 3)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``maps`` fine to coarse (c3, c4, c5); logits at the finest map's stride and the fused map."""
        out = self.laterals[-1](maps[-1])
        for i in range(len(maps) - 2, -1, -1):
            out = self.laterals[i](maps[i]) + upsample(out, self.factors[i])
        out = self.fuse(out)
        return self.classifier(out), out


class FPNQDSNet(SegmentationModel):
    """QDSNet + FPN-lite decoder on ``c3``, ``c4``, ``c5``; logits at stride 8, bilinear ×8 once."""

    def __init__(
        self, num_classes: int, width_mult: float, output_stride: int, decoder_channels: int
    ) -> None:
        body = QDSNet(width_mult, output_stride)
        super().__init__(num_classes, stride=body.stride)
        self.backbone = body
        channels, strides = body.feature_channels, body.feature_strides
        names = ("c3", "c4", "c5")
        factors = [strides[b] // strides[a] for a, b in zip(names, names[1:], strict=False)]
        self.head = FPNLiteHead([channels[n] for n in names], factors, num_classes, decoder_channels)
        self._set_features({**channels, "decoder": decoder_channels}, {**strides, "decoder": strides["c3"]})

    def forward_padded(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Backbone → FPN-lite at stride 8 → bilinear upsampling to the input size."""
        features = self.backbone(x)
        logits, fused = self.head([features["c3"], features["c4"], features["c5"]])
        return upsample(logits, self.feature_strides["c3"]), {**features, "decoder": fused}


@register_model
def fpn_qdsnet(
    num_classes: int = 21, width_mult: float = 1.0, output_stride: int = 32, decoder_channels: int = 128
) -> FPNQDSNet:
    """The INT8 student for AVX2 CPUs: QDSNet + FPN-lite decoder, ReLU only, widths multiples of 16
    (1.06 M parameters, 2.80 GMACs at 512×512 with 8 classes)."""
    return FPNQDSNet(num_classes, width_mult, output_stride, decoder_channels)
