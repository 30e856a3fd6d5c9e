"""What an ONNX file holds: inputs, outputs, opset, ops, parameters, size and edgeseg metadata.

Torch-free (onnx only), so ``edgeseg info`` stays light. Files that are missing, not ONNX, or truncated
raise :class:`InputError` (exit code 2) naming the file.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeseg.errors import InputError
from edgeseg.runtime.metadata import ModelMetadata


def load_onnx(path: str | os.PathLike, load_weights: bool = True) -> onnx.ModelProto:
    """Load and structurally check an ONNX file; any problem is an :class:`InputError` naming it."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"ONNX file not found: {p}")
    if p.stat().st_size == 0:
        raise InputError(f"{p} is empty, not an ONNX model")
    try:
        model = onnx.load(os.fspath(p), load_external_data=load_weights)
    except Exception as err:  # DecodeError for garbage, truncated protobufs, missing external data, ...
        raise InputError(f"{p} is not a readable ONNX model (truncated or another format): {err}") from err
    if not model.graph.node or model.ir_version <= 0 or not model.opset_import:
        raise InputError(f"{p} is not an ONNX model (no graph, IR version or opset)")
    try:
        onnx.checker.check_model(model)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(f"{p} is a damaged ONNX model: {first[:300]}") from err
    return model


def _value_info(value: onnx.ValueInfoProto) -> dict[str, Any]:
    tensor = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "unknown"
    shape = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in tensor.shape.dim]
    return {"name": value.name, "dtype": dtype, "shape": shape}


def _parameter_count(model: onnx.ModelProto) -> int:
    count = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant":
            count += sum(int(np.prod(a.t.dims)) for a in node.attribute if a.name == "value")
    return count


def onnx_info(path: str | os.PathLike) -> dict[str, Any]:
    """JSON-able description of an ONNX file (see module docstring); raises InputError for bad files."""
    p = Path(path)
    model = load_onnx(p)
    props = {prop.key: prop.value for prop in model.metadata_props}
    weights = {t.name for t in model.graph.initializer}
    try:
        edgeseg_meta = ModelMetadata.from_props(props).__dict__ if "edgeseg_version" in props else None
    except (ValueError, TypeError) as err:
        raise InputError(f"{p} has unreadable edgeseg metadata: {err}") from err
    return {
        "path": str(p),
        "file_size": p.stat().st_size,
        "ir_version": model.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [_value_info(v) for v in model.graph.input if v.name not in weights],
        "outputs": [_value_info(v) for v in model.graph.output],
        "nodes": len(model.graph.node),
        "ops": dict(Counter(n.op_type for n in model.graph.node).most_common()),
        "parameters": _parameter_count(model),
        "metadata": props,
        "edgeseg": edgeseg_meta,
    }
