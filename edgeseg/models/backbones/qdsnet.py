"""QDSNet: a DSNet variant laid out for INT8 on CPUs without 8-bit dot-product instructions (AVX2 only).

Measured with ONNX Runtime's static QDQ INT8 on an AVX2 CPU (one thread, CPU time, stacks of 4 layers):
full 3×3 convolutions with 48–128 channels at strides 4 and 8 run about 1.8–2× faster in INT8 than in
FP32, 1×1 convolutions 1.3–1.7× (wider is better), but depthwise 3×3 convolutions run *slower* in INT8
(0.6–0.8×). So:

- where the maps are large (strides 4 and 8) QDSNet uses full 3×3 convolutions (64 and 128 channels);
- depthwise-separable blocks (:class:`~edgeseg.models.backbones.dsnet.DSBlock`) stay at strides 16 and 32,
  where the wide pointwise convolutions carry the work and a large share of the parameters;
- the stem is a 4×4 stride-4 "patchify" convolution (3 → 32 channels). A per-node profile showed a 3×3
  stride-2 stem on the 3-channel image running about 1.6× slower in INT8 than in FP32; the patchify stem
  has a quarter of the output positions. On the whole network its effect was within the measurement noise
  (1.52–1.56× against 1.45–1.63× with a 16-channel 3×3 stem, random weights).

ReLU only, no squeeze-excitation, every width a multiple of 16. Stage maps ``c2``..``c5``: 64, 128, 256, 384
channels at width 1.0, strides 4, 8, 16, 32; ``output_stride`` 16 or 8 dilates the last stages instead of
striding. ``stem_stride=2`` gives a 3×3 stride-2 stem instead (the c2 row must then stride by 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgeseg.models.backbones.dsnet import DSBlock
from edgeseg.models.backbones.mobilenetv2 import make_divisible
from edgeseg.models.layers import ConvBNAct

# block kind ("dense" 3×3 ConvBNAct or "separable" DSBlock), output channels, repeats, stride of the first
# block; one row per stage c2..c5. The stem (a 4×4 stride-4 "patchify" convolution by default) already
# brings the map to stride 4, so c2 does not stride.
QDSNET_STAGES: tuple[tuple[str, int, int, int], ...] = (
    ("dense", 64, 1, 1),
    ("dense", 128, 3, 2),
    ("separable", 256, 3, 2),
    ("separable", 384, 2, 2),
)
QDSNET_STEM_CHANNELS = 32
QDSNET_STEM_STRIDE = 4


class QDSNet(nn.Module):
    """The QDSNet backbone; ``forward`` returns the stage maps ``c2``..``c5``.

    ``stages`` and ``stem_channels`` override the layout (rows as in :data:`QDSNET_STAGES`)."""

    def __init__(
        self,
        width_mult: float = 1.0,
        output_stride: int = 32,
        stages: Sequence[Sequence[object]] = QDSNET_STAGES,
        stem_channels: int = QDSNET_STEM_CHANNELS,
        stem_stride: int = QDSNET_STEM_STRIDE,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        if len(stages) != 4:
            raise ValueError(f"QDSNet needs 4 stage rows (c2..c5), got {len(stages)}")
        if stem_stride not in (2, 4) or stem_stride * int(stages[0][3]) != 4:  # type: ignore[call-overload]
            raise ValueError(
                f"the stem stride ({stem_stride}) times the c2 stage's stride ({stages[0][3]}) must be 4"
            )
        channels = make_divisible(stem_channels * width_mult, 16)
        if stem_stride == 2:
            self.stem = ConvBNAct(3, channels, 3, stride=2)
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(3, channels, 4, 4, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
            )
        current_stride, dilation = stem_stride, 1
        built: list[nn.Sequential] = []
        for kind, width, repeats, first_stride in stages:
            if kind not in ("dense", "separable"):
                raise ValueError(f"QDSNet block kind must be 'dense' or 'separable', got {kind!r}")
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
        maps: dict[str, torch.Tensor] = {}
        for name, stage in zip(("c2", "c3", "c4", "c5"), self.stages, strict=True):
            x = stage(x)
            maps[name] = x
        return maps
