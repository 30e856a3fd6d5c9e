"""INT8 quantization and FP16 conversion behind their gates, through the Python API and ``edgeseg quantize``.

The models are three-conv networks exported with plain ``torch.onnx.export`` (dynamic H/W). The *fragile*
one has a first-layer channel stuck at 1000 that the next layer ignores: FP32 does not care, but per-tensor
INT8 activations then have a step of ~4 and the useful channels round to zero. Validation masks are the FP32
model's own predictions, so FP32 mIoU is 100 and every INT8 mistake shows.
"""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from edgeseg.data import build_dataset
from edgeseg.errors import GateFailed, InputError
from edgeseg.quantize.fp16 import convert_fp16
from edgeseg.quantize.int8 import quantize_int8
from edgeseg.runtime.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMetadata

# The CLI tests calibrate on the built-in synthetic data, so the model predicts its classes.
NUM_CLASSES = build_dataset("synthetic", "val").num_classes
SIDE = 40


class TinySeg(nn.Module):
    """conv3×3 → ReLU → conv3×3/2 → ReLU → conv1×1 → bilinear back to the input size."""

    def __init__(self, fragile: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(16, NUM_CLASSES, 1)
        if fragile:
            with torch.no_grad():
                self.c1.weight[0].zero_()
                self.c1.bias[0] = 1000.0
                self.c2.weight[:, 0].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c3(F.relu(self.c2(F.relu(self.c1(x)))))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


def export_tiny(path, fragile: bool = False) -> None:
    """Export a :class:`TinySeg` with edgeseg metadata (stride 1, pads internally)."""
    model = TinySeg(fragile).eval()
    axes = {0: "n", 2: "h", 3: "w"}
    torch.onnx.export(
        model, (torch.randn(1, 3, 32, 32),), str(path), opset_version=17, input_names=["input"],
        output_names=["output"], dynamic_axes={"input": axes, "output": axes}, dynamo=False,
    )  # fmt: skip
    proto = onnx.load(str(path))
    meta = ModelMetadata(model_name="tiny", classes=[f"c{i}" for i in range(NUM_CLASSES)], stride=1, opset=17)
    for key, value in meta.to_props().items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


class LabelledByModel:
    """Smooth random images whose masks are the FP32 model's predictions (so FP32 mIoU is 100)."""

    num_classes = NUM_CLASSES
    fixed_size = (SIDE, SIDE)
    root, split = "labelled-by-model", "val"

    def __init__(self, model_path, count: int = 6) -> None:
        import onnxruntime as ort

        from edgeseg.runtime.ops import normalized_batch

        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        self.items = []
        for _ in range(count):
            coarse = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
            image = np.asarray(Image.fromarray(coarse).resize((SIDE, SIDE), Image.BILINEAR))
            logits = session.run(None, {"input": normalized_batch(image, IMAGENET_MEAN, IMAGENET_STD)})[0]
            self.items.append((image, logits[0].argmax(0).astype(np.int64)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantize")
    clean, fragile = folder / "clean.onnx", folder / "fragile.onnx"
    export_tiny(clean)
    export_tiny(fragile, fragile=True)
    return {"clean": clean, "fragile": fragile, "data_clean": LabelledByModel(clean),
            "data_fragile": LabelledByModel(fragile)}  # fmt: skip


def props(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_int8_runs_at_any_size_and_says_int8(models, tmp_path):
    out = tmp_path / "clean.int8.onnx"
    data = models["data_clean"]
    report = quantize_int8(models["clean"], out, calib=data, calib_size=4, val=data, max_drop=25.0)
    assert out.is_file() and report.path == out
    meta = props(out)
    assert meta["precision"] == "int8" and meta["model_name"] == "tiny"
    info = json.loads(meta["quantization"])
    assert info["calib_images"] == 4 and info["calib_size"] == [SIDE, SIDE] and info["method"] == "minmax"
    graph = onnx.load(str(out)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the tail (final Resize) stays float, so no DequantizeLinear produces the output
    producer = {o: n for n in graph.node for o in n.output}
    assert producer["output"].op_type == "Resize"
    assert graph.output[0].type == onnx.load(str(models["clean"])).graph.output[0].type  # dynamic h×w kept
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((2, 3, 37, 51)).astype(np.float32)
    y = session.run(None, {"input": x})[0]
    assert y.shape == (2, NUM_CLASSES, 37, 51) and y.dtype == np.float32
    assert report.other_sizes and report.miou_fp32 == pytest.approx(100.0)
    assert report.drop <= 25.0 and report.agreement > 0.75


def test_gate_rejects_a_broken_int8_and_writes_nothing(models, tmp_path):
    out = tmp_path / "fragile.int8.onnx"
    data = models["data_fragile"]
    with pytest.raises(GateFailed, match="nothing was written"):
        quantize_int8(models["fragile"], out, calib=data, calib_size=4, val=data, max_float_nodes=0)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_gate_keeps_sensitive_nodes_float_and_recovers(models, tmp_path):
    out = tmp_path / "fragile.int8.onnx"
    data = models["data_fragile"]
    report = quantize_int8(models["fragile"], out, calib=data, calib_size=4, val=data, max_drop=10.0,
                           max_float_nodes=6)  # fmt: skip
    first = report.attempts[0]
    assert not first.passed and first.drop > 30.0  # the outlier channel wrecks plain INT8
    assert report.attempts[-1].passed and report.drop <= 10.0
    assert report.float_nodes and len(report.float_nodes) <= 6
    conv_names = [n.name for n in onnx.load(str(models["fragile"])).graph.node if n.op_type == "Conv"]
    assert any(name in conv_names[:2] for name in report.float_nodes)
    assert json.loads(props(out)["quantization"])["float_nodes"] == report.float_nodes


def test_int8_refuses_bad_arguments(models, tmp_path):
    data = models["data_clean"]
    with pytest.raises(InputError, match="method"):
        quantize_int8(models["clean"], tmp_path / "a.onnx", calib=data, method="kl")
    existing = tmp_path / "exists.onnx"
    existing.write_bytes(b"keep")
    with pytest.raises(InputError, match="--force"):
        quantize_int8(models["clean"], existing, calib=data)
    assert existing.read_bytes() == b"keep"
    with pytest.raises(InputError, match="not found"):
        quantize_int8(tmp_path / "missing.onnx", tmp_path / "b.onnx", calib=data)


def test_fp16_keeps_float32_io_and_agrees_on_argmax(models, tmp_path):
    out = tmp_path / "clean.fp16.onnx"
    report = convert_fp16(models["clean"], out, val=models["data_clean"])
    model = onnx.load(str(out))
    assert props(out)["precision"] == "fp16"
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    halves = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert halves, "weights were not converted to float16"
    resize = next(n for n in model.graph.node if n.op_type == "Resize")
    producer = {o: n for n in model.graph.node for o in n.output}
    assert producer[resize.input[0]].op_type == "Cast"  # Resize runs in float32
    assert report.agreement >= 0.995 and report.drop is not None and report.drop <= 1.0
    assert report.other_sizes


def test_fp16_gate_failure_writes_nothing(models, tmp_path):
    out = tmp_path / "never.onnx"
    with pytest.raises(GateFailed):
        convert_fp16(models["clean"], out, val=models["data_clean"], max_drop=-1.0)
    assert not out.exists()


def cli(*args: str):
    from edgeseg.cli.main import app

    return CliRunner().invoke(app, ["quantize", *map(str, args)])


def test_cli_int8_on_synthetic_data(models, tmp_path):
    out = tmp_path / "cli.int8.onnx"
    result = cli(models["clean"], "-o", out, "--calib", "synthetic", "--calib-size", "2", "--val-size", "3",
                 "--max-drop", "100", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["precision"] == "int8" and report["val_images"] == 3 and report["calib_size"] == [128, 128]
    assert props(out)["precision"] == "int8"


def test_cli_gate_failure_exits_1_and_writes_nothing(models, tmp_path, monkeypatch, capsys):
    from edgeseg.cli.main import main

    out = tmp_path / "cli.int8.onnx"
    args = [models["fragile"], "-o", out, "--calib", "synthetic", "--calib-size", "2", "--val-size", "2",
            "--max-drop", "-100", "--max-float-nodes", "0"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["edgeseg", "quantize", *map(str, args)])
    monkeypatch.delenv("EDGESEG_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    assert "INT8 accuracy gate failed" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_refuses_missing_calibration_data_and_overwrites(models, tmp_path):
    result = cli(models["clean"], "-o", tmp_path / "x.onnx")
    assert isinstance(result.exception, InputError) and result.exception.exit_code == 2
    assert "--calib" in str(result.exception) and not (tmp_path / "x.onnx").exists()
    existing = tmp_path / "exists.onnx"
    existing.write_bytes(b"keep")
    result = cli(models["clean"], "-o", existing, "--fp16")
    assert isinstance(result.exception, InputError) and "--force" in str(result.exception)
    assert existing.read_bytes() == b"keep"


def test_cli_fp16(models, tmp_path):
    out = tmp_path / "cli.fp16.onnx"
    result = cli(models["clean"], "-o", out, "--fp16", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["precision"] == "fp16"
    assert props(out)["precision"] == "fp16"


def test_cli_prints_the_result_once(models, tmp_path):
    result = cli(models["fragile"], "-o", tmp_path / "once.int8.onnx", "--calib", "synthetic",
                 "--calib-size", "2", "--val-size", "2", "--max-drop", "100")  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = [line for line in result.output.splitlines() if re.search(r"mIoU.*\d\.\d\d", line)]
    assert len(figures) == 1 and figures[0].startswith("INT8: mIoU"), result.output
    assert figures[0] in result.stdout
    fp16 = cli(models["clean"], "-o", tmp_path / "once.fp16.onnx", "--fp16")
    assert fp16.exit_code == 0, fp16.output
    assert fp16.output.count("agreement") == 1, fp16.output


def test_progress_reports_each_failed_attempt(models, tmp_path):
    lines: list[str] = []
    data = models["data_fragile"]
    report = quantize_int8(models["fragile"], tmp_path / "f.onnx", calib=data, calib_size=4, val=data,
                           max_drop=10.0, max_float_nodes=6, progress=lines.append)  # fmt: skip
    failed = [line for line in lines if "> allowed" in line]
    assert len(failed) == len(report.attempts) - 1 >= 1
