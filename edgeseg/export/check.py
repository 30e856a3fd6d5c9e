"""Structural checks of an ONNX model: the full ``onnx.checker`` pass with strict shape inference."""

from __future__ import annotations

import onnx

from edgeseg.errors import GateFailed


def check_graph(model: onnx.ModelProto, what: str = "the exported graph") -> None:
    """Run ``onnx.checker.check_model(full_check=True)`` (which includes strict shape inference).

    Raises :class:`GateFailed` with the checker's first line, naming ``what`` was checked.
    """
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # ValidationError, InferenceError, ... all mean "not a valid graph"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise GateFailed(f"onnx.checker rejected {what}: {first[:300]}") from err
