"""Small ONNX graph edits shared by the exporter and the INT8 and FP16 converters.

- :func:`cut_final_upsample`: end the graph before its final bilinear upsampling (a "coarse" export, whose
  runtime takes the argmax at full resolution without building full-resolution logits).

- :func:`tail_nodes`: the nodes after the last weighted op (the final upsampling, argmax/softmax, the crop);
  they stay float32 so that no quantization or half-precision round trip runs at full resolution.
- :func:`shapes_read_through`: ``Shape`` nodes read through DequantizeLinear/Cast nodes to the tensor before
  them, which has the same shape, so that no full-size conversion runs only to feed a ``Shape`` (and the
  Conv → QuantizeLinear fusions of ONNX Runtime keep a single consumer).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper

WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})


def tail_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that feed the graph outputs without passing through a weighted op (Conv, MatMul...):
    the final upsampling, argmax/softmax, the crop, and the shape arithmetic they use."""
    producer = {out: node for node in model.graph.node for out in node.output}
    stack = [o.name for o in model.graph.output]
    seen: set[str] = set()
    tail: list[str] = []
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in seen or node.op_type in WEIGHTED_OPS:
            continue
        seen.add(id(node))
        tail.append(node.name)
        stack.extend(node.input)
    return tail


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name (nodes are excluded from quantization by name)."""
    names = {node.name for node in model.graph.node if node.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_edgeseg_{i}"
            while name in names:
                name += "_"
            node.name = name
            names.add(name)


def prune_dead_nodes(model: onnx.ModelProto) -> int:
    """Remove nodes whose outputs nothing uses; return how many were removed."""
    used = {o.name for o in model.graph.output}
    keep = []
    for node in reversed(list(model.graph.node)):
        if any(out in used for out in node.output):
            keep.append(node)
            used.update(node.input)
    removed = len(model.graph.node) - len(keep)
    if removed:
        del model.graph.node[:]
        model.graph.node.extend(reversed(keep))
        live = {i for node in keep for i in node.input}
        kept_inits = [t for t in model.graph.initializer if t.name in live]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept_inits)
    return removed


def shapes_read_through(model: onnx.ModelProto, op_types: Iterable[str]) -> int:
    """Point every ``Shape`` node that reads the output of an ``op_types`` node (DequantizeLinear, Cast) at
    that node's input, which has the same shape; prune what is left unused. Returns the rewired count."""
    kinds = set(op_types)
    producer = {out: node for node in model.graph.node for out in node.output}
    count = 0
    for node in model.graph.node:
        if node.op_type != "Shape":
            continue
        source = producer.get(node.input[0])
        while source is not None and source.op_type in kinds:
            node.input[0] = source.input[0]
            count += 1
            source = producer.get(node.input[0])
    if count:
        prune_dead_nodes(model)
    return count


def set_prop(model: onnx.ModelProto, key: str, value: str) -> None:
    """Set one ``metadata_props`` entry, replacing an existing one."""
    keep = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    model.metadata_props.add(key=key, value=value)


def restore_io(model: onnx.ModelProto, source: onnx.ModelProto) -> None:
    """Give ``model`` the graph input/output declarations of ``source`` (same names), drop the inferred
    ``value_info`` (ONNX Runtime infers shapes itself) and the opset imports no node uses."""
    declared = {v.name: v for v in [*source.graph.input, *source.graph.output]}
    for value in [*model.graph.input, *model.graph.output]:
        if value.name in declared:
            value.type.CopyFrom(declared[value.name].type)
    del model.graph.value_info[:]
    used = {node.domain or "" for node in model.graph.node}
    keep = [o for o in model.opset_import if (o.domain or "") in used | {"", "ai.onnx"}]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def _constant(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    """The value of tensor ``name`` when it is an initializer or a Constant node's output, else None."""
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
    return None


def _is_spatial_crop(model: onnx.ModelProto, node: onnx.NodeProto) -> bool:
    """Whether a Slice keeps the top-left corner of an N×C×H×W tensor (starts 0, step 1, on H and W only)."""
    inputs = list(node.input) + [""] * (5 - len(node.input))
    starts, axes, steps = (_constant(model, inputs[i]) if inputs[i] else None for i in (1, 3, 4))
    if starts is None or np.any(starts != 0):
        return False
    if axes is not None and not set(int(a) for a in axes) <= {2, 3, -1, -2}:
        return False
    return steps is None or bool(np.all(steps == 1))


def cut_final_upsample(model: onnx.ModelProto) -> int:
    """End ``model`` before its final bilinear upsampling by an integer factor; return the factor.

    The graph must end in a ``Resize`` (linear, half-pixel centres, as PyTorch's ``align_corners=False``)
    with constant scales (1, 1, f, f), optionally followed by the crop that removes the padding to the
    model's stride (``Slice`` nodes from the origin). The output keeps its name and now carries the coarse
    logits; the crop is left to the caller, who knows the input's size. Raises ``ValueError`` saying what
    the graph ends in otherwise.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    output = model.graph.output[0].name
    node = producer.get(output)
    while node is not None and node.op_type == "Slice" and _is_spatial_crop(model, node):
        node = producer.get(node.input[0])
    if node is None or node.op_type != "Resize":
        ends = "an input" if node is None else f"a {node.op_type} node"
        raise ValueError(f"the graph ends in {ends}, not in a bilinear upsampling (Resize)")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    mode = attrs.get("mode", b"nearest").decode()
    transform = attrs.get("coordinate_transformation_mode", b"half_pixel").decode()
    if mode != "linear" or transform not in ("half_pixel", "pytorch_half_pixel") or attrs.get("antialias"):
        raise ValueError(
            f"the final Resize is mode={mode}, coordinate_transformation_mode={transform}; only bilinear "
            "upsampling with half-pixel centres (align_corners=False, no antialias) can be left to the "
            "runtime"
        )
    scales = _constant(model, node.input[2]) if len(node.input) > 2 and node.input[2] else None
    factor = float(scales[-1]) if scales is not None and scales.size == 4 else 0.0
    if (
        scales is None
        or scales.size != 4
        or not np.all(scales[:2] == 1)
        or scales[2] != scales[3]
        or factor != int(factor)
        or factor < 2
    ):
        raise ValueError(f"the final Resize has scales {scales}, not a constant integer factor (1, 1, f, f)")
    model.graph.node.append(helper.make_node("Identity", [node.input[0]], [output], name="coarse_logits"))
    for consumer in list(model.graph.node):
        if consumer is not model.graph.node[-1] and output in consumer.output:
            model.graph.node.remove(consumer)
    prune_dead_nodes(model)
    return int(factor)
