"""``edgeseg export --int8 / --fp16``: the FP32 export is validated, then reduced behind its own gate."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from typer.testing import CliRunner

from edgeseg.checkpoint import make_checkpoint, save_checkpoint
from edgeseg.cli.main import app
from edgeseg.data import build_dataset
from edgeseg.export import read_metadata
from edgeseg.models import create


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    ds = build_dataset("synthetic", "val")
    model = create("lraspp_dsnet", num_classes=ds.num_classes, width_mult=0.25, inter_channels=16)
    path = tmp_path_factory.mktemp("precision") / "student.pt"
    save_checkpoint(make_checkpoint(model, classes=ds.classes, palette=ds.palette), path)
    return path


def test_export_int8_writes_only_the_gated_int8_model(checkpoint, tmp_path):
    out = tmp_path / "student.int8.onnx"
    args = ["export", str(checkpoint), "-o", str(out), "--int8", "--calib", "synthetic", "--calib-size", "4"]
    result = CliRunner().invoke(app, [*args, "--data", "synthetic", "--max-images", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["fp32"]["validation"]["passed"] is True
    assert report["int8"]["drop"] <= report["int8"]["max_drop"]
    assert read_metadata(out).precision == "int8"
    assert {n.op_type for n in onnx.load(out).graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.int8.onnx"]


def test_export_int8_needs_calibration_data_and_refuses_to_overwrite(checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["export", str(checkpoint), "-o", str(out), "--int8"])
    assert result.exit_code != 0 and "--calib" in str(result.exception or result.output)
    out.write_bytes(b"keep me")
    result = CliRunner().invoke(app, ["export", str(checkpoint), "-o", str(out), "--fp16"])
    assert result.exit_code != 0 and out.read_bytes() == b"keep me"


def test_export_fp16_keeps_float32_io(checkpoint, tmp_path):
    out = tmp_path / "student.fp16.onnx"
    result = CliRunner().invoke(app, ["export", str(checkpoint), "-o", str(out), "--fp16"])
    assert result.exit_code == 0, result.output
    graph = onnx.load(out).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert read_metadata(out).precision == "fp16"


def test_coarse_export_quantizes_and_keeps_its_upsampling_factor(checkpoint, tmp_path):
    """The INT8 gate labels the coarse logits at full size (upsample_argmax) and the factor survives."""
    import numpy as np

    from edgeseg.runtime import Segmenter

    out = tmp_path / "coarse.int8.onnx"
    args = ["export", str(checkpoint), "-o", str(out), "--coarse", "--int8", "--calib", "synthetic"]
    result = CliRunner().invoke(app, [*args, "--calib-size", "4", "--data", "synthetic", "--max-images", "2"])
    assert result.exit_code == 0, result.output
    assert "logits output at 1/8 (the runtime upsamples)" in result.output
    meta = read_metadata(out)
    assert (meta.precision, meta.upsample) == ("int8", 8)
    image = np.random.default_rng(0).integers(0, 256, (61, 90, 3), dtype=np.uint8)
    assert Segmenter(out, provider="cpu").predict(image).shape == (61, 90)
