"""The ``pretrain:`` section of a pretraining recipe (the rest is an ordinary training recipe)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeseg.errors import InputError


@dataclass
class PretrainConfig:
    """Settings only pretraining has. ``label_smoothing``: the share of each target spread evenly over the
    classes (as ``torch.nn.CrossEntropyLoss``'s), on top of CutMix/MixUp's soft labels."""

    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.label_smoothing, bool) or not 0.0 <= float(self.label_smoothing) < 1.0:
            raise InputError(
                f"pretrain.label_smoothing: expected a number in [0, 1), got {self.label_smoothing!r}"
            )


SECTIONS = {"pretrain": PretrainConfig}
"""The extra recipe sections ``edgeseg pretrain`` reads."""
