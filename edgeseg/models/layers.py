"""Building blocks shared by backbones and heads: ConvBNAct, DSConv, ASPP.

Parameter counts below are for convolution weights only (BatchNorm adds 2 learnable parameters per channel).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("relu", "relu6", "none")


def make_activation(name: str) -> nn.Module:
    """``"relu"``, ``"relu6"`` or ``"none"`` (identity). ReLU-family only: they quantize well to INT8."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


class ConvBNAct(nn.Sequential):
    """k×k convolution (no bias) → BatchNorm → activation; children ``0``, ``1``, ``2`` as in torchvision's
    ``Conv2dNormActivation``, so torchvision state_dict keys (``features.0.0.weight``...) line up.

    Padding keeps the size at stride 1 for any dilation r: ``r·(k−1)/2``.
    Weights: ``k·k·(C_in/groups)·C_out``. Dilation r spreads the same k×k taps over ``r·(k−1)+1`` pixels:
    a larger receptive field, same parameters.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: str = "relu",
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False),
            nn.BatchNorm2d(out_channels),
            make_activation(act),
        )
        self.out_channels = out_channels


class DSConv(nn.Sequential):
    """Depthwise-separable convolution: depthwise k×k (dilation r, stride s) → pointwise 1×1, each with
    BatchNorm and activation (children ``0`` depthwise, ``1`` pointwise).

    Weights: ``k·k·C + C·n`` for C inputs and n outputs, instead of ``k·k·C·n`` for the full convolution:
    for k=3, C=n=256 that is 67,840 instead of 589,824 (8.7× fewer). Dilation adds no parameters.
    ``pointwise_act`` sets the activation after the 1×1 ("none" gives the linear projection used before a
    residual addition).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        act: str = "relu",
        pointwise_act: str | None = None,
    ) -> None:
        super().__init__(
            ConvBNAct(in_channels, in_channels, kernel_size, stride, dilation, groups=in_channels, act=act),
            ConvBNAct(in_channels, out_channels, 1, act=act if pointwise_act is None else pointwise_act),
        )
        self.out_channels = out_channels


def conv_block(
    in_channels: int, out_channels: int, separable: bool, dilation: int = 1, act: str = "relu"
) -> nn.Sequential:
    """A 3×3 ConvBNAct, or a DSConv when ``separable`` (same input/output shapes)."""
    if separable:
        return DSConv(in_channels, out_channels, 3, dilation=dilation, act=act)
    return ConvBNAct(in_channels, out_channels, 3, dilation=dilation, act=act)


class ASPPPooling(nn.Module):
    """Image-level branch of ASPP: global average → 1×1 conv (with bias) → activation, broadcast back.

    No BatchNorm on the 1×1 pooled map, so training with batch size 1 works (BatchNorm needs more than one
    value per channel). Weights: ``C·n + n``.
    """

    def __init__(self, in_channels: int, out_channels: int, act: str = "relu") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled feature expanded to ``x``'s height and width."""
        pooled = self.act(self.conv(self.pool(x)))
        return pooled.expand(-1, -1, x.shape[-2], x.shape[-1])


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (DeepLabV3): a 1×1 branch, one 3×3 branch per atrous rate, an image
    pooling branch, concatenated and projected by 1×1 to ``out_channels``, then dropout.

    Rates (6, 12, 18) suit output stride 16, (12, 24, 36) output stride 8. With ``separable`` the 3×3 branches
    are DSConv: ``9·C + C·n`` weights each instead of ``9·C·n``. Weights in total for C inputs, n outputs and
    R rates: ``C·n`` (1×1) + ``R·9·C·n`` (or ``R·(9·C + C·n)``) + ``C·n + n`` (pooling, with bias)
    + ``(R+2)·n·n`` (projection); without ``image_pooling`` the pooling branch and its ``n·n`` go away.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        atrous_rates: Sequence[int] = (6, 12, 18),
        separable: bool = False,
        dropout: float = 0.1,
        act: str = "relu",
        image_pooling: bool = True,
    ) -> None:
        super().__init__()
        branches: list[nn.Module] = [ConvBNAct(in_channels, out_channels, 1, act=act)]
        for rate in atrous_rates:
            if separable:
                branches.append(DSConv(in_channels, out_channels, 3, dilation=rate, act=act))
            else:
                branches.append(ConvBNAct(in_channels, out_channels, 3, dilation=rate, act=act))
        if image_pooling:
            branches.append(ASPPPooling(in_channels, out_channels, act=act))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(
            ConvBNAct(len(branches) * out_channels, out_channels, 1, act=act), nn.Dropout(dropout)
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the projected multi-rate context map, same height and width as ``x``."""
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinear upsampling by an integer ``factor`` (align_corners=False; identity for 1).

    Models upsample between maps whose strides divide each other exactly (the input is padded to the model's
    stride), so a constant factor gives the same result as resizing to the target's size, while the
    exported graph gets a Resize with constant scales: no shape arithmetic, and ONNX shape inference keeps
    the channel count.
    """
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
