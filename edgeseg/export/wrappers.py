"""Modules that put the pieces around a segmentation model into the exported graph.

``ExportWrapper`` turns any segmentation ``nn.Module`` into the exact function the ONNX file computes:
optional in-graph preprocessing (uint8 NHWC RGB → float → normalize → NCHW), the model, selection of the
logits from dict or tuple outputs, and the output kind (logits, softmax, or argmax labels). The same
wrapper is the PyTorch reference that validation compares the ONNX file against, so like is compared
with like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from edgeseg.errors import InputError

OUTPUT_KINDS = ("logits", "softmax", "argmax")
UINT8_MAX_CLASSES = 255


def select_logits(out: object, output_key: str | int | None) -> torch.Tensor:
    """Return the logits tensor from a model output that may be a tensor, a dict, or a tuple/list.

    ``output_key`` names the entry of a dict (torchvision's ``"out"``) or indexes a tuple/list; a tensor
    output needs none. Raises :class:`InputError` naming the available keys when the choice is ambiguous.
    """
    if isinstance(out, torch.Tensor):
        if output_key is not None:
            raise InputError(f"output_key={output_key!r} given, but the model returns a single tensor")
        return out
    if isinstance(out, Mapping):
        if output_key is None or output_key not in out:
            keys = ", ".join(repr(k) for k in out)
            raise InputError(
                f"the model returns a dict with keys {keys}; pick the logits with output_key=..."
            )
        return out[output_key]
    if isinstance(out, Sequence):
        if not isinstance(output_key, int) or not -len(out) <= output_key < len(out):
            raise InputError(
                f"the model returns a {type(out).__name__} of {len(out)} items; pick the logits with "
                "an integer output_key"
            )
        return out[output_key]
    raise InputError(f"the model returns {type(out).__name__}, not a tensor, dict or tuple of tensors")


class NormalizeNHWC(nn.Module):
    """uint8 N×H×W×3 RGB → float N×3×H×W normalized as ``(x / 255 - mean) / std`` (training's formula)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise InputError(f"mean and std need 3 values (RGB), got mean={list(mean)} std={list(std)}")
        if any(s <= 0 for s in std):
            raise InputError(f"std values must be positive, got {list(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).to(torch.float32)
        return (x / 255.0 - self.mean) / self.std


class ExportWrapper(nn.Module):
    """The function an exported file computes: ``[preprocess] → model → select logits → output kind``.

    ``output`` is ``"logits"`` (N×C×H×W), ``"softmax"`` (probabilities over C) or ``"argmax"`` (labels
    N×H×W, uint8 when ``num_classes`` ≤ 255, else int64). ``num_classes`` is only needed for argmax.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        output: str = "logits",
        preprocess: bool = False,
        output_key: str | int | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        if output not in OUTPUT_KINDS:
            raise InputError(f"output must be one of {', '.join(OUTPUT_KINDS)}, got {output!r}")
        if output == "argmax" and num_classes is None:
            raise ValueError("num_classes is needed to choose the label dtype of an argmax output")
        self.model = model
        self.output = output
        self.output_key = output_key
        self.preprocess = NormalizeNHWC(mean, std) if preprocess else None
        self.label_dtype = torch.uint8 if (num_classes or 0) <= UINT8_MAX_CLASSES else torch.int64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            x = self.preprocess(x)
        logits = select_logits(self.model(x), self.output_key)
        if self.output == "softmax":
            return torch.softmax(logits, dim=1)
        if self.output == "argmax":
            return torch.argmax(logits, dim=1).to(self.label_dtype)
        return logits
