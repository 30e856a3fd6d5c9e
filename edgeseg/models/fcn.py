"""FCN-32s, FCN-16s, FCN-8s (Long et al., 2015) on a selectable backbone.

The classifier is fully convolutional: a 3×3 conv ("fc6/fc7" equivalent, ``decoder``) and a 1×1 score layer
on the stride-32 map instead of fully connected layers. Scores are upsampled by transposed convolutions
initialised to bilinear interpolation (learnable): FCN-32s upsamples ×32 at once; FCN-16s adds 1×1 scores of
the stride-16 map to the ×2-upsampled stride-32 scores, then upsamples ×16; FCN-8s also fuses the stride-8
scores before a final ×8. The input is padded to a multiple of 32, so every fused map lines up exactly (no
cropping offsets as in the original Caffe model).
"""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones import create_backbone
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ConvBNAct
from edgeseg.models.registry import register_model


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """ConvTranspose2d weight (channels, channels, k, k) that upsamples each channel bilinearly on its own."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(kernel_size, dtype=torch.float32) - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = taps[:, None] * taps[None, :]
    return weight


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Transposed conv (kernel 2f, stride f, padding f/2) mapping H×W to exactly fH×fW, bilinear at init."""
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up


class FCN(SegmentationModel):
    """FCN with skip fusion from ``fuse`` = () (32s), ("c4",) (16s) or ("c4", "c3") (8s)."""

    def __init__(
        self,
        num_classes: int,
        backbone: str,
        fuse: tuple[str, ...],
        head_channels: int = 512,
        dropout: float = 0.1,
        width_mult: float = 1.0,
    ) -> None:
        super().__init__(num_classes, stride=32)
        self.backbone = create_backbone(backbone, output_stride=32, width_mult=width_mult)
        channels = self.backbone.feature_channels
        self.decoder = nn.Sequential(ConvBNAct(channels["c5"], head_channels, 3), nn.Dropout(dropout))
        self.score = nn.Conv2d(head_channels, num_classes, 1)
        self.fuse = fuse
        self.skip_scores = nn.ModuleDict({name: nn.Conv2d(channels[name], num_classes, 1) for name in fuse})
        self.skip_upsamplers = nn.ModuleDict({name: bilinear_upsampler(num_classes, 2) for name in fuse})
        self.upsample = bilinear_upsampler(num_classes, 32 // 2 ** len(fuse))
        self._set_features(
            {**channels, "decoder": head_channels}, {**self.backbone.feature_strides, "decoder": 32}
        )

    def forward_padded(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Score the stride-32 map, fuse the skip scores coarse to fine, upsample to the input size."""
        features = self.backbone(x)
        hidden = self.decoder(features["c5"])
        scores = self.score(hidden)
        for name in self.fuse:
            scores = self.skip_upsamplers[name](scores) + self.skip_scores[name](features[name])
        return self.upsample(scores), {**features, "decoder": hidden}


@register_model
def fcn32s(
    num_classes: int = 21, backbone: str = "resnet50", head_channels: int = 512, width_mult: float = 1.0
) -> FCN:
    """FCN-32s: stride-32 scores upsampled ×32 by one bilinear-initialised transposed convolution."""
    return FCN(num_classes, backbone, (), head_channels, width_mult=width_mult)


@register_model
def fcn16s(
    num_classes: int = 21, backbone: str = "resnet50", head_channels: int = 512, width_mult: float = 1.0
) -> FCN:
    """FCN-16s: stride-32 scores ×2 plus stride-16 scores, upsampled ×16."""
    return FCN(num_classes, backbone, ("c4",), head_channels, width_mult=width_mult)


@register_model
def fcn8s(
    num_classes: int = 21, backbone: str = "resnet50", head_channels: int = 512, width_mult: float = 1.0
) -> FCN:
    """FCN-8s: FCN-16s's fused scores ×2 plus stride-8 scores, upsampled ×8."""
    return FCN(num_classes, backbone, ("c4", "c3"), head_channels, width_mult=width_mult)
