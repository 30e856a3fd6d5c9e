"""MobileNetV2 with torchvision's key layout (``features.0.0`` conv / ``features.0.1`` bn, inverted residuals
``features.N.conv.*``, ``features.18`` last 1×1 conv, ``classifier.1``), a width multiplier and dilation.

``include_top=False`` gives the segmentation backbone: ``features.0``..``features.17`` only (the 1280-channel
``features.18`` and the classifier are dropped; loading a torchvision state_dict reports them as unexpected)
returning ``c2``..``c5`` (24, 32, 96, 320 channels at width 1.0; strides 4, 8, 16, 32). With
``output_stride`` 16 or 8 the strided blocks past that stride keep stride 1 and dilate their depthwise 3×3
instead (the first block of such a stage keeps the previous dilation, as torchvision's ResNet does).
"""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.layers import ConvBNAct

# expand ratio t, output channels c, repeats n, stride s (Sandler et al., Table 2)
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# index of the last block of `features` at strides 4, 8, 16, 32
STAGE_ENDS = {"c2": 3, "c3": 6, "c4": 13, "c5": 17}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without going below 90% of it (torchvision's
    ``_make_divisible``)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class InvertedResidual(nn.Module):
    """1×1 expand (skipped when t=1) → depthwise 3×3 (stride, dilation) → linear 1×1 project; residual when
    stride is 1 and channels match. Children ``conv.0`` .. ``conv.3`` as in torchvision."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(inp, hidden, 1, act="relu6"))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, dilation, groups=hidden, act="relu6"),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block, adding the input when the residual applies."""
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 classifier (``include_top=True``) or segmentation backbone (``include_top=False``)."""

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        output_stride: int = 32,
        include_top: bool = True,
        round_nearest: int = 8,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        input_channel = make_divisible(32 * width_mult, round_nearest)
        features: list[nn.Module] = [ConvBNAct(3, input_channel, 3, stride=2, act="relu6")]
        current_stride, dilation = 2, 1
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            output_channel = make_divisible(c * width_mult, round_nearest)
            previous_dilation = dilation
            if s > 1 and current_stride >= output_stride:
                dilation *= s
                s = 1
            else:
                current_stride *= s
            for i in range(n):
                stride, block_dilation = (s, previous_dilation) if i == 0 else (1, dilation)
                features.append(InvertedResidual(input_channel, output_channel, stride, t, block_dilation))
                input_channel = output_channel
        self.include_top = include_top
        last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        if include_top:
            features.append(ConvBNAct(input_channel, last_channel, 1, act="relu6"))
        self.features = nn.Sequential(*features)
        if include_top:
            self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channel, num_classes))
        self.feature_channels = {name: features[i].out_channels for name, i in STAGE_ENDS.items()}
        self.feature_strides = {"c2": 4, "c3": 8, "c4": min(16, output_stride), "c5": output_stride}
        self.stride = output_stride
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The stage outputs ``c2``..``c5`` (blocks 3, 6, 13, 17)."""
        stages: dict[str, torch.Tensor] = {}
        ends = {i: name for name, i in STAGE_ENDS.items()}
        for i in range(STAGE_ENDS["c5"] + 1):
            x = self.features[i](x)
            if i in ends:
                stages[ends[i]] = x
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Class logits with the top; otherwise the stage maps (see ``forward_stages``)."""
        if not self.include_top:
            return self.forward_stages(x)
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))
