"""DSNet: a very small depthwise-separable backbone for edge students.

Stem and stride-4 stage are full 3×3 convolutions (at high resolution with few channels a dense conv costs
little and runs far better in INT8 than a depthwise one); the stride-8/16/32 stages are residual
depthwise-separable blocks. ReLU only, no squeeze-excitation, every width a multiple of 16 (INT8 kernels).
Stage maps ``c2``..``c5``: 32, 64, 128, 256 channels at width 1.0, strides 4, 8, 16, 32; ``output_stride``
16 or 8 dilates the last stages instead of striding, as for ResNet and MobileNetV2.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones.mobilenetv2 import make_divisible
from edgeseg.models.layers import ConvBNAct, DSConv

# block kind, output channels, repeats, stride of the first block; one row per stage c2..c5
DSNET_STAGES = (
    ("dense", 32, 2, 2),
    ("separable", 64, 2, 2),
    ("separable", 128, 3, 2),
    ("separable", 256, 2, 2),
)
STEM_CHANNELS = 16


class DSBlock(nn.Module):
    """DSConv (depthwise 3×3 → BN → ReLU → pointwise 1×1 → BN) with a residual when shapes allow, then ReLU.

    Weights: ``9·C + C·n``. Stride and dilation go to the depthwise conv."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = DSConv(in_channels, out_channels, 3, stride, dilation, pointwise_act="none")
        self.use_residual = stride == 1 and in_channels == out_channels
        self.act = nn.ReLU(inplace=True)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        out = self.conv(x)
        return self.act(out + x if self.use_residual else out)


class DSNet(nn.Module):
    """The DSNet backbone; ``forward`` returns the stage maps ``c2``..``c5``."""

    def __init__(self, width_mult: float = 1.0, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        channels = make_divisible(STEM_CHANNELS * width_mult, 16)
        self.stem = ConvBNAct(3, channels, 3, stride=2)
        current_stride, dilation = 2, 1
        stages: list[nn.Sequential] = []
        for kind, width, repeats, first_stride in DSNET_STAGES:
            out_channels = make_divisible(width * width_mult, 16)
            previous_dilation = dilation
            if current_stride >= output_stride:
                dilation *= first_stride
                first_stride = 1
            else:
                current_stride *= first_stride
            blocks: list[nn.Module] = []
            for i in range(repeats):
                stride, block_dilation = (first_stride, previous_dilation) if i == 0 else (1, dilation)
                if kind == "dense":
                    blocks.append(ConvBNAct(channels, out_channels, 3, stride, block_dilation))
                else:
                    blocks.append(DSBlock(channels, out_channels, stride, block_dilation))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        names = ("c2", "c3", "c4", "c5")
        self.feature_channels = {
            name: stage[-1].out_channels for name, stage in zip(names, stages, strict=True)
        }
        self.feature_strides = {"c2": 4, "c3": 8, "c4": min(16, output_stride), "c5": output_stride}
        self.stride = output_stride
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The stage maps ``c2``..``c5``."""
        x = self.stem(x)
        stages: dict[str, torch.Tensor] = {}
        for name, stage in zip(("c2", "c3", "c4", "c5"), self.stages, strict=True):
            x = stage(x)
            stages[name] = x
        return stages
