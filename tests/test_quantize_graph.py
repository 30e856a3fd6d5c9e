"""Graph edits and the sensitivity score behind INT8/FP16 conversion, on hand-built ONNX graphs."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeseg.export.graph_edits import shapes_read_through, tail_nodes
from edgeseg.quantize.sensitivity import channel_sqnr, exclusion_schedule, fake_quantize, nodes_touching


def _graph() -> onnx.ModelProto:
    """input → Conv → Relu → Conv → (Q → DQ) → Resize(sizes from Shape(DQ out)) → output."""
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    w2 = numpy_helper.from_array(np.ones((2, 4, 1, 1), np.float32), "w2")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.uint8), "z")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["a"], name="conv1"),
        helper.make_node("Relu", ["a"], ["b"], name="relu1"),
        helper.make_node("Conv", ["b", "w2"], ["c"], name="conv2"),
        helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"], name="q"),
        helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["cd"], name="dq"),
        helper.make_node("Shape", ["cd"], ["shape"], name="shape"),
        helper.make_node("Resize", ["cd", "", "", "shape"], ["output"], name="resize", mode="linear"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], [w, w2, scale, zero],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_tail_stops_at_the_last_weighted_op():
    tail = tail_nodes(_graph())
    assert set(tail) == {"resize", "dq", "q", "shape"}
    assert "conv2" not in tail


def test_shape_reads_through_dequantize_and_dead_nodes_go():
    model = _graph()
    assert shapes_read_through(model, ("DequantizeLinear",)) == 1
    shape = next(n for n in model.graph.node if n.op_type == "Shape")
    assert shape.input[0] == "cq"  # the quantized tensor: same shape, no dequantization needed
    assert [n.name for n in model.graph.node].count("dq") == 1  # still used by Resize


def test_a_wiped_channel_scores_low_although_it_is_small():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    fine = fake_quantize(x, np.array(8 / 255, np.float32), np.array(128, np.uint8))
    assert channel_sqnr(x, fine) > 20
    x[:, 0] *= 1000  # one huge channel sets the range; the three others round to zero
    scale = np.array((x.max() - x.min()) / 255, np.float32)
    wiped = fake_quantize(x, scale, np.array(np.round(-x.min() / scale), np.uint8))
    whole_tensor_db = 20 * np.log10(np.linalg.norm(x) / np.linalg.norm(x - wiped))
    assert whole_tensor_db > 30  # a whole-tensor ratio would call this fine
    assert channel_sqnr(x, wiped) < 20


def test_fake_quantize_clips_and_rounds_like_onnx():
    x = np.array([-1.0, 0.04, 0.05, 0.15, 100.0], np.float32)
    out = fake_quantize(x, np.array(0.1, np.float32), np.array(0, np.uint8))
    np.testing.assert_allclose(out, [0.0, 0.0, 0.0, 0.2, 25.5], atol=1e-6)


def test_nodes_touching_a_relu_output_include_the_conv_that_carries_it():
    assert nodes_touching(_graph(), "b") == ["relu1", "conv1", "conv2"]


def test_exclusion_schedule_doubles_and_respects_the_budget():
    ranked = [("b", 1.0), ("a", 2.0), ("c", 3.0)]
    # worst 1; worst 2 adds nothing ("a" touches conv1 and relu1 again) and is skipped; all 3 adds q
    assert exclusion_schedule(_graph(), ranked, max_nodes=4) == [
        ["relu1", "conv1", "conv2"],
        ["relu1", "conv1", "conv2", "q"],
    ]
    assert exclusion_schedule(_graph(), ranked, max_nodes=3) == [["relu1", "conv1", "conv2"]]
    assert exclusion_schedule(_graph(), ranked, max_nodes=2) == []
