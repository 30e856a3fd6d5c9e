"""`edgeseg bench`: a checkpoint (PyTorch and its ONNX export) and an ONNX file side by side."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image
from typer.testing import CliRunner

from edgeseg.checkpoint import make_checkpoint, save_checkpoint
from edgeseg.cli.main import app
from edgeseg.errors import InputError
from edgeseg.models import create
from edgeseg.runtime import ModelMetadata

KEYS = {
    "model",
    "engine",
    "provider",
    "precision",
    "batch",
    "height",
    "width",
    "threads",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "throughput_ips",
    "peak_mem_mb",
    "mem_kind",
    "runs",
    "warmup",
}


def onnx_model(path, precision: str) -> None:
    """A 1×1-convolution graph whose metadata claims ``precision`` (rows must report what files say)."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, 3, 1, 1], np.eye(3).ravel().tolist())
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in ModelMetadata(precision=precision, stride=1).to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


@pytest.fixture
def models(tmp_path):
    torch.manual_seed(0)
    student = create("lraspp_dsnet", num_classes=3, width_mult=0.25, inter_channels=16)
    ckpt = make_checkpoint(student, classes=["a", "b", "c"], palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]])
    save_checkpoint(ckpt, tmp_path / "student.pt")
    onnx_model(tmp_path / "other.onnx", precision="int8")
    return tmp_path


def test_bench_json_rows_carry_every_key_with_sane_values(models):
    out = models / "out"
    outputs = [
        "--json",
        str(out / "bench.json"),
        "--markdown",
        str(out / "bench.md"),
        "--plot",
        str(out / "bench.png"),
    ]
    args = [
        "bench",
        str(models / "student.pt"),
        str(models / "other.onnx"),
        "--onnx",
        "--size",
        "40x56",
        "--batch",
        "1,2",
        "--threads",
        "1",
        "--warmup",
        "1",
        "--runs",
        "3",
        *outputs,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "bench.json").read_text())
    rows = doc["rows"]
    assert doc["environment"]["onnxruntime"]["version"] and doc["settings"]["runs"] == 3
    combos = {(r["model"], r["engine"], r["batch"]) for r in rows}
    assert combos == {
        (m, e, b)
        for m, e in [("student", "torch"), ("student", "onnxruntime"), ("other", "onnxruntime")]
        for b in (1, 2)
    }
    for row in rows:
        assert KEYS <= row.keys()
        setting = (row["provider"], row["height"], row["width"], row["threads"], row["runs"])
        assert setting == ("cpu", 40, 56, 1, 3)
        assert row["precision"] == ("int8" if row["model"] == "other" else "fp32")
        assert 0 < row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["throughput_ips"] == pytest.approx(row["batch"] * 1000 / row["mean_ms"])
        assert row["peak_mem_mb"] is None or row["peak_mem_mb"] >= 0
    table = (out / "bench.md").read_text().splitlines()
    assert len(table) == 2 + len(rows) and "p99 ms" in table[0]
    with Image.open(out / "bench.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 100
    again = CliRunner().invoke(app, args)
    assert isinstance(again.exception, InputError) and "--force" in str(again.exception)


def test_bench_rejects_bad_options_before_timing(models):
    onnx_path = str(models / "other.onnx")
    for extra, message in [
        (["--size", "40by56"], "--size"),
        (["--batch", "0"], "--batch"),
        (["--runs", "2", "--seconds", "1"], "not both"),
        (["--provider", "cuda"], "cuda"),
    ]:
        result = CliRunner().invoke(app, ["bench", onnx_path, *extra])
        assert isinstance(result.exception, InputError), (extra, result.output)
        assert message in str(result.exception)


def test_coarse_model_is_timed_to_full_size_labels(tmp_path, monkeypatch):
    """A coarse export skips the upsampling the other engines do, so its timed call includes the runtime's."""
    from edgeseg.bench.engines import onnx_case, onnx_spec
    from edgeseg.bench.timing import BenchConfig
    from edgeseg.export import to_onnx
    from edgeseg.runtime import ops

    torch.manual_seed(0)
    student = create("lraspp_dsnet", num_classes=3, width_mult=0.25, inter_channels=16).eval()
    to_onnx(student, tmp_path / "coarse.onnx", coarse=True, validate=False)
    shapes = []
    real = ops.upsample_argmax
    spy = lambda s, f, scratch: shapes.append(real(s, f, scratch).shape)  # noqa: E731
    monkeypatch.setattr(ops, "upsample_argmax", spy)
    config = BenchConfig("coarse", "onnxruntime", "cpu", "fp32", 2, 40, 56, 1)
    runnable = onnx_case(onnx_spec(tmp_path / "coarse.onnx", "coarse"), config).setup()
    runnable.call()
    assert shapes == [(48, 64), (48, 64)]  # 40×56 padded to the stride (16), per image of the batch
