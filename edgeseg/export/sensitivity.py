"""Which activations does INT8 quantization damage most? The ranking behind the gate's retries.

Every activation Quantize→Dequantize pair of a QDQ model is read out (as ONNX Runtime's ``qdq_loss_debug``
does) and scored by its own quantization noise: the mean over channels of the signal-to-quantization-noise
ratio. Per channel, because the classic failure is a tensor whose range is set by a few large channels while
the others round to zero, which a whole-tensor ratio hides. The producer and consumers of the worst tensors
are then kept in float.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from edgeseg.export.calibration import ImageCalibrationReader

SQNR_CAP_DB = 60.0


def channel_sqnr(pre: np.ndarray, post: np.ndarray) -> float:
    """Mean over channels (axis 1 of 4-D maps) of the signal-to-quantization-noise ratio in dB, each capped
    at ``SQNR_CAP_DB``: a channel wiped out by a range that other channels set scores 0 dB, however small."""
    pre = np.asarray(pre, np.float64)
    post = np.asarray(post, np.float64)
    if pre.ndim == 4:
        pre_c = pre.transpose(1, 0, 2, 3).reshape(pre.shape[1], -1)
        post_c = post.transpose(1, 0, 2, 3).reshape(post.shape[1], -1)
    else:
        pre_c, post_c = pre.reshape(1, -1), post.reshape(1, -1)
    signal = np.linalg.norm(pre_c, axis=1)
    noise = np.linalg.norm(pre_c - post_c, axis=1)
    live = signal > 0
    if not live.any():
        return SQNR_CAP_DB
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(signal[live] / np.maximum(noise[live], 1e-30))
    return float(np.minimum(db, SQNR_CAP_DB).mean())


def rank_sensitive_tensors(qdq_path: Path, reader: ImageCalibrationReader) -> list[tuple[str, float]]:
    """Activations of the QDQ model ranked from the most damaged by their own Quantize→Dequantize pair
    (lowest :func:`channel_sqnr`) to the least, as ``(tensor name, score in dB)``."""
    import onnxruntime as ort

    model = onnx.load(os.fspath(qdq_path))
    producer = {out: node for node in model.graph.node for out in node.output}
    weights = {t.name for t in model.graph.initializer}
    pairs: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        quant = producer.get(node.input[0])
        if quant is None or quant.op_type != "QuantizeLinear" or quant.input[0] in weights:
            continue
        pairs.setdefault(quant.input[0], node.output[0])
    outputs = {o.name for o in model.graph.output}
    for name in {*pairs, *pairs.values()} - outputs:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    collected: dict[str, list[np.ndarray]] = {}
    reader.rewind()
    while (inputs := reader.get_next()) is not None:
        for name, value in zip(names, session.run(None, inputs), strict=True):
            collected.setdefault(name, []).append(value)
    scores = {}
    for tensor, post in pairs.items():
        pre_values, post_values = collected[tensor], collected[post]
        per_image = [channel_sqnr(a, b) for a, b in zip(pre_values, post_values, strict=True)]
        scores[tensor] = float(np.mean(per_image))
    return sorted(scores.items(), key=lambda kv: kv[1])


def nodes_touching(model: onnx.ModelProto, tensor: str) -> list[str]:
    """The producer and the consumers of ``tensor``: excluding them keeps it float."""
    names = [node.name for node in model.graph.node if tensor in node.output]
    names += [node.name for node in model.graph.node if tensor in node.input]
    return names


def exclusion_schedule(
    model: onnx.ModelProto, ranked: Sequence[tuple[str, float]], max_nodes: int
) -> list[list[str]]:
    """Node sets to keep float on successive retries: the nodes around the worst 1, 2, 4, ... tensors, and
    finally the most tensors whose nodes fit in ``max_nodes``."""
    cumulative: list[list[str]] = []
    nodes: list[str] = []
    for tensor, _ in ranked:
        grown = nodes + [n for n in nodes_touching(model, tensor) if n not in nodes]
        if len(grown) > max_nodes:
            break
        nodes = grown
        cumulative.append(list(nodes))
    picks = [cumulative[k - 1] for k in (2**i for i in range(32)) if k <= len(cumulative)]
    if cumulative and cumulative[-1] not in picks:
        picks.append(cumulative[-1])
    return picks
