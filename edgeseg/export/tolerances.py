"""The parity gate's pass limits: :class:`Tolerances` owns their defaults; the CLI, the pipeline and the
API read them from here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Tolerances:
    """Pass limits; ``None`` switches a check off. Defaults are for fp32 exports."""

    max_abs: float | None = 1e-4
    max_rel: float | None = None
    min_agreement: float | None = 0.9999
    max_miou_delta: float | None = 0.001


FP32_TOLERANCES = Tolerances()
NO_LIMITS = Tolerances(max_abs=None, max_rel=None, min_agreement=None, max_miou_delta=None)
"""Every check off: a comparison that only reports (INT8 against FP32, one runtime against another)."""
DEFAULT_MAX_IMAGES = 8
"""Validation images the parity gate takes from a dataset (``--max-images``, ``export.val_images``)."""
