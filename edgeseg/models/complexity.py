"""Parameter and GFLOP counts, with GFLOPs = multiply-accumulates × 1e-9 (torchvision's table convention)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def complexity(model: nn.Module, size: tuple[int, int] = (512, 512)) -> tuple[int, float]:
    """Return ``(parameters, GFLOPs)`` of one forward pass on a 1×3×H×W input.

    FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, transposed convolutions,
    matrix products; 2 FLOPs per multiply-accumulate) and halved. A model built on the ``meta`` device is
    counted without computing anything. The model runs in eval mode and its training flag is restored.
    """
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    params = sum(p.numel() for p in model.parameters())
    device = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, 3, height, width, device=device))
    finally:
        model.train(was_training)
    return params, counter.get_total_flops() / 2 * 1e-9
