"""ONNX → INT8 (static QDQ, calibrated) or FP16, each behind an accuracy gate: ``quantize_file`` and the steps
behind it (``int8``, ``fp16``, ``calibration``, ``sensitivity``); gate defaults in ``defaults``.

Names are imported on first use, so that reading the defaults does not load ONNX Runtime's quantizer.
"""

from __future__ import annotations

from edgeseg.lazy import lazy_getattr

_LAZY = {
    "quantize_file": "edgeseg.quantize.api",
    "quantize_int8": "edgeseg.quantize.int8",
    "QuantReport": "edgeseg.quantize.int8",
    "convert_fp16": "edgeseg.quantize.fp16",
    "Fp16Report": "edgeseg.quantize.fp16",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr("edgeseg.quantize", _LAZY)
