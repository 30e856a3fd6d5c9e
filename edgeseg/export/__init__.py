"""ONNX export with a parity gate: ``to_onnx``, ``export_checkpoint``, ``validate_onnx``, ``onnx_info``.

Names are imported on first use, so that torch-free pieces (``edgeseg.export.info``) load without torch.
"""

from __future__ import annotations

from edgeseg.lazy import lazy_getattr

_LAZY = {
    "to_onnx": "edgeseg.export.api",
    "ExportReport": "edgeseg.export.api",
    "export_checkpoint": "edgeseg.export.from_checkpoint",
    "load_samples": "edgeseg.export.from_checkpoint",
    "validate_onnx": "edgeseg.export.validate",
    "ValidationResult": "edgeseg.export.validate",
    "Tolerances": "edgeseg.export.tolerances",
    "ParityFailed": "edgeseg.export.validate",
    "onnx_info": "edgeseg.export.info",
    "load_onnx": "edgeseg.export.info",
    "read_metadata": "edgeseg.export.metadata",
    "write_metadata": "edgeseg.export.metadata",
    "ExportWrapper": "edgeseg.export.wrappers",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr("edgeseg.export", _LAZY)
