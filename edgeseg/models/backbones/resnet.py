"""ResNet-18/34/50/101 with torchvision's parameter and buffer names.

``ResNet(..., include_top=True)`` is the classifier (``conv1 bn1 layer1..4 fc``): a torchvision
``state_dict`` loads into it with ``strict=True``. With ``include_top=False`` it is the segmentation backbone:
the same names without ``avgpool``/``fc``, returning the stage maps ``c2``..``c5`` (strides 4, 8, 16, 32).
``output_stride`` 16 or 8 replaces the stride of the last one or two stages by dilation (torchvision's
``replace_stride_with_dilation=[False, False, True]`` / ``[False, True, True]``): same parameters, larger
receptive field, higher-resolution ``c4``/``c5``. Unlike torchvision, BasicBlock (ResNet-18/34) also dilates.

``resnet18c`` .. ``resnet101c`` are ResNet-C (He et al., "Bag of Tricks for Image Classification", 2019): the
7×7 stride-2 stem convolution becomes three 3×3 convolutions (32, 32, 64 filters, the first at stride 2, each
but the last followed by BN and ReLU), the stem of MMSegmentation's ``ResNetV1c`` behind its DeepLab
configurations. Three layers at stride 2 instead of one matter where the classes are told apart by texture of
a few pixels; the cost is about 20 MMACs more per 64×64 image. ``conv1`` is then that ``nn.Sequential``, so
torchvision's ImageNet weights do not fit its stem.
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3×3 convolution without bias whose padding keeps the size at stride 1."""
    return nn.Conv2d(in_planes, out_planes, 3, stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution without bias."""
    return nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(x' + bn2(conv2(relu(bn1(conv1(x)))))) where x' is x or its downsampled projection."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (carries the stride, as torchvision's ResNet v1.5) → 1×1 expand ×4, residual."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck residual block."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


DILATE_LAST_STAGES = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}


class ResNet(nn.Module):
    """ResNet classifier (``include_top=True``) or segmentation backbone (``include_top=False``)."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        output_stride: int = 32,
        include_top: bool = True,
        deep_stem: bool = False,
    ) -> None:
        super().__init__()
        if output_stride not in DILATE_LAST_STAGES:
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        dilate = DILATE_LAST_STAGES[output_stride]
        self.inplanes = 64
        self.dilation = 1
        if deep_stem:
            self.conv1: nn.Module = nn.Sequential(
                conv3x3(3, 32, stride=2), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                conv3x3(32, 32), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                conv3x3(32, 64),
            )  # fmt: skip
        else:
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=dilate[2])
        self.include_top = include_top
        if include_top:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512 * block.expansion, num_classes)
        widths = [c * block.expansion for c in (64, 128, 256, 512)]
        strides = [4, 8, min(16, output_stride), output_stride]
        self.feature_channels = dict(zip(("c2", "c3", "c4", "c5"), widths, strict=True))
        self.feature_strides = dict(zip(("c2", "c3", "c4", "c5"), strides, strict=True))
        self.stride = output_stride
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self,
        block: type[BasicBlock | Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, previous_dilation)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The four stage outputs ``c2``..``c5``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return {"c2": c2, "c3": c3, "c4": c4, "c5": c5}

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Class logits N×num_classes with the top; otherwise the stage maps (see ``forward_stages``)."""
        stages = self.forward_stages(x)
        if not self.include_top:
            return stages
        return self.fc(torch.flatten(self.avgpool(stages["c5"]), 1))


RESNET_LAYOUTS: dict[str, tuple[type[BasicBlock | Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}
RESNET_LAYOUTS.update({f"{name}c": layout for name, layout in list(RESNET_LAYOUTS.items())})  # ResNet-C stems


def resnet(name: str, num_classes: int = 1000, output_stride: int = 32, include_top: bool = True) -> ResNet:
    """Build ``resnet18``/``resnet34``/``resnet50``/``resnet101`` (or their ResNet-C form, ``resnet18c``, …)
    by name."""
    block, layers = RESNET_LAYOUTS[name]
    return ResNet(block, layers, num_classes, output_stride, include_top, deep_stem=name.endswith("c"))
