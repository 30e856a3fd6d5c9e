"""Building blocks: parameter-count formulas, dilation and receptive field, bilinear transposed convs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.models.fcn import bilinear_upsampler
from edgeseg.models.layers import ASPP, ConvBNAct, DSConv


def conv_weights(module: nn.Module) -> int:
    """Number of convolution weights (no BatchNorm, no biases)."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def receptive_field(module: nn.Module, channels: int, size: int = 41) -> tuple[int, int]:
    """Height and width of the input region that influences the centre output pixel (by its gradient)."""
    module.eval()
    x = torch.randn(1, channels, size, size, requires_grad=True)
    module(x)[0, :, size // 2, size // 2].sum().backward()
    rows = (x.grad.abs().sum(dim=(0, 1, 3)) > 0).nonzero()
    cols = (x.grad.abs().sum(dim=(0, 1, 2)) > 0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize(("k", "c", "n"), [(3, 256, 256), (3, 32, 64), (5, 24, 40)])
def test_separable_weight_count_formula(k: int, c: int, n: int) -> None:
    separable, full = DSConv(c, n, k), ConvBNAct(c, n, k)
    assert conv_weights(separable) == k * k * c + c * n
    assert conv_weights(full) == k * k * c * n
    bn_params = 2 * c + 2 * n  # depthwise BN over c channels, pointwise BN over n
    assert sum(p.numel() for p in separable.parameters()) == k * k * c + c * n + bn_params


@pytest.mark.parametrize("separable", [False, True])
def test_aspp_weight_count_formula(separable: bool) -> None:
    c, n, rates = 64, 32, (6, 12, 18)
    aspp = ASPP(c, n, rates, separable=separable)
    per_rate = 9 * c + c * n if separable else 9 * c * n
    expected = c * n + len(rates) * per_rate + c * n + (len(rates) + 2) * n * n
    assert conv_weights(aspp) == expected
    assert aspp(torch.randn(2, c, 9, 11)).shape == (2, n, 9, 11)


@pytest.mark.parametrize("block", [ConvBNAct, DSConv])
def test_dilation_grows_receptive_field_without_adding_parameters(block: type[nn.Module]) -> None:
    fields, counts = {}, set()
    for dilation in (1, 2, 4):
        layer = block(8, 8, 3, dilation=dilation)
        fields[dilation] = receptive_field(layer, 8)
        counts.add(sum(p.numel() for p in layer.parameters()))
    assert len(counts) == 1
    assert fields == {1: (3, 3), 2: (5, 5), 4: (9, 9)}  # (k - 1)·r + 1


def test_aspp_receptive_field_follows_its_largest_rate_at_constant_parameters() -> None:
    small, large = ASPP(4, 8, (1, 2), image_pooling=False), ASPP(4, 8, (2, 5), image_pooling=False)
    assert sum(p.numel() for p in small.parameters()) == sum(p.numel() for p in large.parameters())
    assert receptive_field(small, 4, size=31) == (5, 5)
    assert receptive_field(large, 4, size=31) == (11, 11)  # (3 - 1)·5 + 1


def test_bilinear_transposed_conv_matches_bilinear_interpolation_inside() -> None:
    for factor in (2, 8, 32):
        up = bilinear_upsampler(3, factor)
        x = torch.randn(1, 3, 4, 5)
        y = up(x)
        assert y.shape == (1, 3, 4 * factor, 5 * factor)
        ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        inner = slice(factor, -factor)  # borders differ: the transposed conv pads with zeros
        torch.testing.assert_close(y[..., inner, inner], ref[..., inner, inner], atol=1e-5, rtol=1e-5)
