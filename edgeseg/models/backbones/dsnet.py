"""DSNet: a very small depthwise-separable backbone for edge students.

Stem and stride-4 stage are full 3×3 convolutions (at high resolution with few channels a dense conv costs
little and runs far better in INT8 than a depthwise one); the stride-8/16/32 stages are residual
depthwise-separable blocks. ReLU only, no squeeze-excitation, every width a multiple of 16 (INT8 kernels).
Stage maps ``c2``..``c5``: 32, 64, 128, 256 channels at width 1.0, strides 4, 8, 16, 32; ``output_stride``
16 or 8 dilates the last stages instead of striding, as for ResNet and MobileNetV2.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    """The DSNet backbone; ``forward`` returns the stage maps ``c2``..``c5``.

    ``stages`` (rows as in :data:`DSNET_STAGES`), ``stem_channels`` and ``stem_stride`` change the layout
    (None: the class's ``STAGES``, ``STEM_CHANNELS``, ``STEM_STRIDE``): the stem is a 3×3 stride-2
    convolution, or with ``stem_stride=4`` a 4×4 stride-4 "patchify" one; the stem stride times the c2 row's
    stride must be 4. :class:`~edgeseg.models.backbones.qdsnet.QDSNet` is DSNet with its own layout.
    """

    STAGES: Sequence[Sequence[object]] = DSNET_STAGES
    STEM_CHANNELS: int = STEM_CHANNELS
    STEM_STRIDE: int = 2

    def __init__(
        self,
        width_mult: float = 1.0,
        output_stride: int = 32,
        stages: Sequence[Sequence[object]] | None = None,
        stem_channels: int | None = None,
        stem_stride: int | None = None,
    ) -> None:
        super().__init__()
        stages = self.STAGES if stages is None else stages
        stem_channels = self.STEM_CHANNELS if stem_channels is None else stem_channels
        stem_stride = self.STEM_STRIDE if stem_stride is None else stem_stride
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        if len(stages) != 4:
            raise ValueError(f"{type(self).__name__} needs 4 stage rows (c2..c5), got {len(stages)}")
        if stem_stride not in (2, 4) or stem_stride * int(stages[0][3]) != 4:  # type: ignore[call-overload]
            raise ValueError(
                f"the stem stride ({stem_stride}) times the c2 stage's stride ({stages[0][3]}) must be 4"
            )
        channels = make_divisible(stem_channels * width_mult, 16)
        if stem_stride == 2:
            self.stem: nn.Module = ConvBNAct(3, channels, 3, stride=2)
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(3, channels, 4, 4, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
            )
        current_stride, dilation = stem_stride, 1
        built: list[nn.Sequential] = []
        for kind, width, repeats, first_stride in stages:
            if kind not in ("dense", "separable"):
                raise ValueError(f"block kind must be 'dense' or 'separable', got {kind!r}")
            out_channels = make_divisible(int(width) * width_mult, 16)  # type: ignore[call-overload]
            stride = int(first_stride)  # type: ignore[call-overload]
            previous_dilation = dilation
            if current_stride >= output_stride:
                dilation *= stride
                stride = 1
            else:
                current_stride *= stride
            blocks: list[nn.Module] = []
            for i in range(int(repeats)):  # type: ignore[call-overload]
                block_stride, block_dilation = (stride, previous_dilation) if i == 0 else (1, dilation)
                if kind == "dense":
                    blocks.append(ConvBNAct(channels, out_channels, 3, block_stride, block_dilation))
                else:
                    blocks.append(DSBlock(channels, out_channels, block_stride, block_dilation))
                channels = out_channels
            built.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(built)
        names = ("c2", "c3", "c4", "c5")
        self.feature_channels = {
            name: stage[-1].out_channels for name, stage in zip(names, built, strict=True)
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
