"""Making INT8 files run alike in the runtimes users deploy on, not only in ONNX Runtime.

Measured on the quickstart's distilled LR-ASPP student (``benchmarks/runtimes.py``):

- onnx's reference evaluator (``onnx.reference``) implements QuantizeLinear/DequantizeLinear from opset 19
  only, and ONNX Runtime's quantizer keeps the source's opset (17 for torchscript exports), so the QDQ file is
  converted to opset 19 (``qdq_opset``); ONNX Runtime and OpenCV run it unchanged.
- OpenCV DNN runs a quantized Sigmoid (a QDQ pair on its output, which ONNX Runtime fixes at scale 1/255) and
  the Mul it gates unlike ONNX Runtime: 89 % of the labels agreed, against 99.99 % once those two nodes stay
  float (``sigmoid_gates``); ONNX Runtime's mIoU and latency did not change (one element-wise Mul).
"""

from __future__ import annotations

import onnx

QDQ_OPSET = 19


def sigmoid_gates(model: onnx.ModelProto) -> list[str]:
    """Names of the Sigmoid nodes and of the Mul nodes that multiply by their output (attention gates, as in
    LR-ASPP and squeeze-excitation): kept float, they make OpenCV DNN agree with ONNX Runtime."""
    sigmoid_outputs = {node.output[0] for node in model.graph.node if node.op_type == "Sigmoid"}
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "Sigmoid"
        or (node.op_type == "Mul" and any(name in sigmoid_outputs for name in node.input))
    ]


def qdq_opset(model: onnx.ModelProto, opset: int = QDQ_OPSET) -> onnx.ModelProto:
    """``model`` at default-domain opset ``opset`` at least (where QuantizeLinear/DequantizeLinear have the
    form onnx's reference evaluator implements); unchanged when already there or when onnx's version
    converter cannot convert one of its ops."""
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current >= opset:
        return model
    try:
        converted = onnx.version_converter.convert_version(model, opset)
    except Exception:  # an op without an adapter: the file still runs everywhere but onnx.reference
        return model
    del converted.metadata_props[:]
    converted.metadata_props.extend(model.metadata_props)
    return converted
