"""ONNX → INT8 (static QDQ, calibrated) or FP16, each behind an accuracy gate: ``quantize_file`` and the steps
behind it (``int8``, ``fp16``, ``calibration``, ``sensitivity``); gate defaults in ``defaults``.

Names are imported on first use, so that reading the defaults does not load ONNX Runtime's quantizer.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "quantize_file": "edgeseg.quantize.api",
    "quantize_int8": "edgeseg.quantize.int8",
    "QuantReport": "edgeseg.quantize.int8",
    "convert_fp16": "edgeseg.quantize.fp16",
    "Fp16Report": "edgeseg.quantize.fp16",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeseg.quantize' has no attribute {name!r}")
