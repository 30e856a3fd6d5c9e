"""U-Net (Ronneberger et al., 2015) and its depthwise-separable edge variant ``unet_ds``.

The contracting path (``backbone``) applies two 3×3 convolutions per level and doubles the channels after
each 2×2 max-pool; the expanding path (``decoder``) upsamples ×2 while halving the channels, concatenates the
mirrored contracting map and applies two 3×3 convolutions. Convolutions are padded ("same") and followed by
BatchNorm, so with the input padded to a multiple of ``2**depth`` every level lines up and any size works.
``unet_ds`` replaces the 3×3 convolutions after the first by DSConv and the transposed-conv upsampling by
bilinear ×2 plus a 1×1 ConvBNAct, and scales widths by ``width_mult`` (multiples of 8).
"""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones.mobilenetv2 import make_divisible
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ConvBNAct, conv_block, upsample
from edgeseg.models.registry import register_model


def double_conv(in_channels: int, out_channels: int, separable: bool) -> nn.Sequential:
    """Two 3×3 conv-BN-ReLU (DSConv when ``separable``, except on the 3-channel image)."""
    first_separable = separable and in_channels > 3
    return nn.Sequential(
        conv_block(in_channels, out_channels, first_separable),
        conv_block(out_channels, out_channels, separable),
    )


class UNetEncoder(nn.Module):
    """Contracting path: level k (map ``c<k>``, stride 2**k) has ``base·2**k`` channels."""

    def __init__(self, base_channels: int, depth: int, separable: bool) -> None:
        super().__init__()
        widths = [base_channels * 2**k for k in range(depth + 1)]
        self.levels = nn.ModuleList(
            [double_conv(3, widths[0], separable)]
            + [double_conv(widths[k - 1], widths[k], separable) for k in range(1, depth + 1)]
        )
        self.pool = nn.MaxPool2d(2)
        self.feature_channels = {f"c{k}": width for k, width in enumerate(widths)}
        self.feature_strides = {f"c{k}": 2**k for k in range(depth + 1)}
        self.stride = 2**depth

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Maps ``c0`` (full resolution) .. ``c<depth>``."""
        features: dict[str, torch.Tensor] = {}
        for k, level in enumerate(self.levels):
            x = level(x if k == 0 else self.pool(x))
            features[f"c{k}"] = x
        return features


class UpBlock(nn.Module):
    """×2 upsampling that halves channels, concatenation with the skip map, double conv."""

    def __init__(self, in_channels: int, out_channels: int, separable: bool) -> None:
        super().__init__()
        self.separable = separable
        if separable:
            self.up = ConvBNAct(in_channels, out_channels, 1)
        else:
            self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = double_conv(2 * out_channels, out_channels, separable)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` to ``skip``'s size, concatenate, convolve."""
        if self.separable:
            x = self.up(upsample(x, 2))
        else:
            x = self.up(x)
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(SegmentationModel):
    """U-Net with ``depth`` poolings (stride ``2**depth``) and ``base_channels`` at full resolution."""

    def __init__(self, num_classes: int, base_channels: int, depth: int, separable: bool) -> None:
        if not 1 <= depth <= 5:
            raise ValueError(f"depth must be 1..5, got {depth}")
        super().__init__(num_classes, stride=2**depth)
        self.backbone = UNetEncoder(base_channels, depth, separable)
        widths = [base_channels * 2**k for k in range(depth + 1)]
        self.decoder = nn.ModuleList(
            [UpBlock(widths[k + 1], widths[k], separable) for k in reversed(range(depth))]
        )
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)
        self._set_features(
            {**self.backbone.feature_channels, "decoder": widths[0]},
            {**self.backbone.feature_strides, "decoder": 1},
        )

    def forward_padded(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Contract, expand with mirrored skips, classify at full resolution."""
        features = self.backbone(x)
        depth = len(self.decoder)
        y = features[f"c{depth}"]
        for up, k in zip(self.decoder, reversed(range(depth)), strict=True):
            y = up(y, features[f"c{k}"])
        return self.classifier(y), {**features, "decoder": y}


@register_model
def unet(num_classes: int = 21, base_channels: int = 64, depth: int = 4) -> UNet:
    """The original U-Net widths (64 → 1024 at depth 4), padded convolutions with BatchNorm."""
    return UNet(num_classes, base_channels, depth, separable=False)


@register_model
def unet_ds(
    num_classes: int = 21, width_mult: float = 1.0, depth: int = 4, base_channels: int | None = None
) -> UNet:
    """U-Net with depthwise-separable convolutions; base width ``64·width_mult`` rounded to a multiple of 8
    (0.125 → 8 channels, 0.15–0.25 → 16), or exactly ``base_channels`` when given (e.g. 12)."""
    if base_channels is None:
        base_channels = make_divisible(64 * width_mult, 8)
    elif isinstance(base_channels, bool) or not isinstance(base_channels, int) or base_channels < 1:
        raise ValueError(f"base_channels must be a positive integer, got {base_channels!r}")
    return UNet(num_classes, base_channels, depth, separable=True)
