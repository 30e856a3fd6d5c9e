"""Which activations does INT8 quantization damage most? The ranking behind the gate's retries.

Every activation Quantize→Dequantize pair of a QDQ model is scored by its own quantization noise on the
float model's activations (the pre/post-QDQ comparison of ONNX Runtime's ``qdq_loss_debug``, without the
damage of upstream layers): the mean over channels of the signal-to-quantization-noise ratio. Per channel,
because the classic failure is a tensor whose range is set by a few large channels while the others round
to zero, which a whole-tensor ratio hides. The producer and consumers of the worst tensors are then kept in
float.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from edgeseg.quantize.calibration import ImageCalibrationReader

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


def fake_quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """QuantizeLinear then DequantizeLinear in numpy (per-tensor; rounding half to even as ONNX Runtime)."""
    info = np.iinfo(zero_point.dtype)
    scale = np.float32(scale.reshape(()))
    zero = np.int32(zero_point.reshape(()))
    q = np.clip(np.rint(x / scale) + zero, info.min, info.max)
    return ((q - zero) * scale).astype(np.float32)


def activation_params(qdq: onnx.ModelProto) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Tensor name → (scale, zero point) of every per-tensor activation QuantizeLinear of a QDQ model."""
    inits = {t.name: t for t in qdq.graph.initializer}
    params = {}
    for node in qdq.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits or len(node.input) < 3:
            continue
        if node.input[1] in inits and node.input[2] in inits:
            scale = onnx.numpy_helper.to_array(inits[node.input[1]])
            zero = onnx.numpy_helper.to_array(inits[node.input[2]])
            if scale.size == 1:
                params[node.input[0]] = (scale, zero)
    return params


def rank_sensitive_tensors(
    float_path: Path, qdq_path: Path, reader: ImageCalibrationReader
) -> list[tuple[str, float]]:
    """Activations ranked from the most damaged by their own quantization to the least, as ``(tensor name,
    score in dB)``: each tensor of the float model is put through its QDQ pair's scale and zero point
    (:func:`fake_quantize`) and scored by :func:`channel_sqnr`. Using float activations keeps each score free
    of the damage done upstream, which in the QDQ model would make every later tensor look bad too."""
    import onnxruntime as ort

    params = activation_params(onnx.load(os.fspath(qdq_path)))
    model = onnx.load(os.fspath(float_path))
    produced = {o for node in model.graph.node for o in node.output} | {i.name for i in model.graph.input}
    params = {name: value for name, value in params.items() if name in produced}
    outputs = {o.name for o in model.graph.output}
    for name in set(params) - outputs:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    scores: dict[str, list[float]] = {name: [] for name in params}
    reader.rewind()
    while (inputs := reader.get_next()) is not None:
        values = dict(zip(names, session.run(None, inputs), strict=True))
        for name, (scale, zero) in params.items():
            x = values[name] if name in values else inputs[name]
            scores[name].append(channel_sqnr(x, fake_quantize(x, scale, zero)))
    ranked = [(name, float(np.mean(values))) for name, values in scores.items() if values]
    return sorted(ranked, key=lambda kv: kv[1])


FUSED_ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu"})


def nodes_touching(model: onnx.ModelProto, tensor: str) -> list[str]:
    """The producer and the consumers of ``tensor``: excluding them keeps it float. When the producer is an
    activation that the quantizer folds into the op before it (Relu, Clip), that op is included too, since
    it then carries the quantized output."""
    producer = {out: node for node in model.graph.node for out in node.output}
    names = []
    node = producer.get(tensor)
    if node is not None:
        names.append(node.name)
        if node.op_type in FUSED_ACTIVATIONS and node.input[0] in producer:
            names.append(producer[node.input[0]].name)
    names += [node.name for node in model.graph.node if tensor in node.input and node.name not in names]
    return names


def exclusion_schedule(
    model: onnx.ModelProto, ranked: Sequence[tuple[str, float]], max_nodes: int
) -> list[list[str]]:
    """Node sets to keep float on successive retries: the nodes around the worst 1, 2, 4, ... tensors, and
    finally the most tensors whose nodes fit in ``max_nodes``; a set equal to an earlier one is skipped."""
    cumulative: list[list[str]] = []
    nodes: list[str] = []
    for tensor, _ in ranked:
        grown = nodes + [n for n in nodes_touching(model, tensor) if n not in nodes]
        if len(grown) > max_nodes:
            break
        nodes = grown
        cumulative.append(list(nodes))
    picks: list[list[str]] = []
    for k in [2**i for i in range(len(cumulative).bit_length())] + [len(cumulative)]:
        if 0 < k <= len(cumulative) and cumulative[k - 1] not in picks:
            picks.append(cumulative[k - 1])
    return picks
