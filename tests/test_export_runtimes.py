"""The parity gate in other runtimes (OpenCV DNN, onnx's reference evaluator), and INT8 files that run alike
in them: Sigmoid gates kept float, QDQ at opset 19."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from edgeseg.checkpoint import make_checkpoint, save_checkpoint
from edgeseg.cli.main import app
from edgeseg.data import DataConfig, build_dataset
from edgeseg.errors import InputError
from edgeseg.export.crosscheck import validate_in_runtimes
from edgeseg.export.from_checkpoint import export_checkpoint, load_samples
from edgeseg.export.runtimes import RuntimeUnavailable, check_runtime, runtime_runner
from edgeseg.export.validate import Tolerances, validate_onnx
from edgeseg.models import create
from edgeseg.quantize.int8 import quantize_int8
from edgeseg.quantize.portable import QDQ_OPSET, sigmoid_gates
from edgeseg.runtime.ops import normalized_batch

DATA = DataConfig(synthetic_size=48, synthetic_train=16, synthetic_val=6)
OFF = Tolerances(max_abs=None, max_rel=None, min_agreement=None, max_miou_delta=None)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An LR-ASPP checkpoint (its head gates features with a Sigmoid), its FP32 export and INT8 file."""
    root = tmp_path_factory.mktemp("runtimes")
    train, val = build_dataset("synthetic", "train", DATA), build_dataset("synthetic", "val", DATA)
    torch.manual_seed(0)
    model = create("lraspp_dsnet", num_classes=train.num_classes, width_mult=0.25, inter_channels=16)
    save_checkpoint(make_checkpoint(model, classes=train.classes, palette=train.palette), root / "m.pt")
    export_checkpoint(root / "m.pt", root / "m.onnx")
    quantize_int8(root / "m.onnx", root / "m_int8.onnx", calib=train, calib_size=8, val=val, val_size=4,
                  max_drop=100.0)  # fmt: skip
    return {"root": root, "model": model.eval(), "fp32": root / "m.onnx", "int8": root / "m_int8.onnx",
            "val": val}  # fmt: skip


def _inputs(files, count: int = 3) -> list[np.ndarray]:
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    return [normalized_batch(files["val"][i][0], mean, std) for i in range(count)]


def _agreement(runtime: str, path, inputs) -> float:
    run, ort_run = runtime_runner(runtime, path)[0], runtime_runner("onnxruntime", path)[0]
    return float(np.mean([np.mean(run(x).argmax(1) == ort_run(x).argmax(1)) for x in inputs]))


def test_fp32_passes_the_gate_in_the_reference_evaluator_and_says_where(files):
    result = validate_onnx(files["fp32"], files["model"], runtime="onnx-reference", sizes=((1, 37, 45),))
    assert result.passed, result.failures
    assert result.runtime == "onnx-reference" and result.to_dict()["runtime"] == "onnx-reference"
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4


def test_fp32_passes_the_gate_in_opencv(files):
    pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless) is not installed")
    result = validate_onnx(files["fp32"], files["model"], runtime="opencv")
    assert result.passed and result.runtime == "opencv", result.failures


def test_int8_runs_alike_in_every_runtime(files):
    proto = onnx.load(files["int8"])
    assert next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == QDQ_OPSET
    gates = {n.output[0] for n in proto.graph.node if n.op_type == "Sigmoid"}
    readers = [n.op_type for n in proto.graph.node if gates & set(n.input)]
    assert gates and readers == ["Mul"]  # the gate's output stays float, no QuantizeLinear
    assert _agreement("onnx-reference", files["int8"], _inputs(files, 2)) > 0.999
    if _has_cv2():
        assert _agreement("opencv", files["int8"], _inputs(files)) > 0.999


def _has_cv2() -> bool:
    try:
        check_runtime("opencv")
    except RuntimeUnavailable:
        return False
    return True


def test_sigmoid_gates_names_the_sigmoid_and_the_mul_it_gates():
    x, w = onnx.helper.make_tensor_value_info("x", 1, [1]), onnx.helper.make_tensor_value_info("y", 1, [1])
    nodes = [
        onnx.helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
        onnx.helper.make_node("Mul", ["x", "s"], ["g"], name="gate"),
        onnx.helper.make_node("Mul", ["g", "x"], ["y"], name="other"),
    ]
    model = onnx.helper.make_model(onnx.helper.make_graph(nodes, "g", [x], [w]))
    assert sigmoid_gates(model) == ["sig", "gate"]


def test_validate_in_runtimes_records_where_the_file_was_checked(files, monkeypatch):
    samples = load_samples("synthetic", 2, overrides=["data.synthetic_size=48"])
    checks = validate_in_runtimes(files["int8"], files["model"], ["onnxruntime", "onnx-reference"],
                                  samples=samples, tolerances=OFF, sizes=((1, 48, 48),))  # fmt: skip
    assert checks.checked_in == ["onnxruntime", "onnx-reference"] and checks.passed
    record = checks.to_dict()
    assert record["runtime"] == "onnxruntime" and record["checked_in"] == checks.checked_in
    assert record["runtimes"]["onnx-reference"]["agreement_vs_onnxruntime"] > 0.999
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    skipped = validate_in_runtimes(files["fp32"], files["model"], ["onnxruntime", "opencv"], tolerances=OFF,
                                   sizes=((1, 48, 48),))  # fmt: skip
    assert skipped.checked_in == ["onnxruntime"] and skipped.passed
    assert "opencv-python-headless" in skipped.to_dict()["skipped"]["opencv"]
    assert any(line.startswith("opencv: skipped") for line in skipped.lines())
    with pytest.raises(InputError, match="unknown runtime 'tflite'"):
        validate_in_runtimes(files["fp32"], files["model"], ["tflite"])


def test_cli_validate_in_several_runtimes(files):
    args = ["validate", str(files["fp32"]), "--checkpoint", str(files["root"] / "m.pt"),
            "--runtime", "onnxruntime", "--runtime", "onnx-reference", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["passed"] and record["checked_in"] == ["onnxruntime", "onnx-reference"]
    assert record["runtimes"]["onnx-reference"]["agreement_vs_onnxruntime"] == 1.0
    bad = CliRunner().invoke(app, [*args[:4], "--runtime", "tensorrt"])
    assert isinstance(bad.exception, InputError) and "unknown runtime" in str(bad.exception)
