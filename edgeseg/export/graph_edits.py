"""Small ONNX graph edits shared by the INT8 and FP16 converters.

- :func:`tail_nodes`: the nodes after the last weighted op (the final upsampling, argmax/softmax, the crop);
  they stay float32 so that no quantization or half-precision round trip runs at full resolution.
- :func:`shapes_read_through`: ``Shape`` nodes read through DequantizeLinear/Cast nodes to the tensor before
  them, which has the same shape, so that no full-size conversion runs only to feed a ``Shape`` (and the
  Conv → QuantizeLinear fusions of ONNX Runtime keep a single consumer).
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

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
