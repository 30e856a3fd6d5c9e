"""``edgeseg export`` and ``edgeseg validate`` end to end from a checkpoint of a tiny zoo model."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from edgeseg.checkpoint import file_sha256, make_checkpoint, save_checkpoint
from edgeseg.cli.main import app, main
from edgeseg.data import build_dataset
from edgeseg.errors import InputError
from edgeseg.export import ParityFailed, read_metadata
from edgeseg.models import create

MODEL = {"name": "lraspp_dsnet", "width_mult": 0.25, "inter_channels": 16}
MEAN, STD = [0.45, 0.45, 0.45], [0.25, 0.25, 0.25]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models run far faster on one thread than on two contended ones; restored afterwards."""
    yield


def _checkpoint(path, seed: int) -> None:
    torch.manual_seed(seed)
    ds = build_dataset("synthetic", "val")
    kwargs = {k: v for k, v in MODEL.items() if k != "name"}
    model = create(MODEL["name"], num_classes=ds.num_classes, **kwargs)
    save_checkpoint(make_checkpoint(model, classes=ds.classes, palette=ds.palette, mean=MEAN, std=STD), path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A checkpoint, another one with different weights, and the first exported with real-image checks."""
    root = tmp_path_factory.mktemp("cli")
    _checkpoint(root / "a.pt", 0)
    _checkpoint(root / "b.pt", 1)
    onnx_path = root / "a.onnx"
    result = CliRunner().invoke(
        app, ["export", str(root / "a.pt"), "-o", str(onnx_path), "--data", "synthetic", "--max-images", "2"]
    )
    assert result.exit_code == 0, result.output
    return root, onnx_path, result.output


def test_export_writes_a_validated_model_with_the_checkpoint_metadata(exported):
    root, onnx_path, output = exported
    assert "parity: passed" in output and "simplified by onnxsim" in output and "mIoU torch" in output
    meta = read_metadata(onnx_path)
    ds = build_dataset("synthetic", "val")
    assert meta.classes == ds.classes and meta.palette == ds.palette and (meta.mean, meta.std) == (MEAN, STD)
    assert meta.checkpoint_sha256 == file_sha256(root / "a.pt") and meta.model_name == "lraspp_dsnet"
    assert meta.model_args["width_mult"] == 0.25 and meta.stride == 16 and meta.pads_internally is True
    assert (meta.opset, meta.output, meta.precision) == (17, "logits", "fp32")


def test_validate_json_passes_against_its_own_checkpoint(exported):
    root, onnx_path, _ = exported
    args = [
        "validate",
        str(onnx_path),
        "--checkpoint",
        str(root / "a.pt"),
        "--data",
        "synthetic",
        "--max-images",
        "2",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["passed"] is True and report["max_abs_diff"] < 1e-4 and report["agreement"] >= 0.9999
    assert report["miou_torch"] is not None and abs(report["miou_torch"] - report["miou_onnx"]) <= 0.001
    assert [c["name"] for c in report["checks"]][-2:] == ["real images", "mIoU"]


def test_validate_against_other_weights_fails_with_exit_1(exported, monkeypatch, capsys):
    root, onnx_path, _ = exported
    args = ["validate", str(onnx_path), "--checkpoint", str(root / "b.pt")]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["passed"] is False and report["miou_torch"] is None and report["miou_onnx"] is None
    assert report["max_abs_diff"] > 1e-4 and "another checkpoint" in result.stderr
    monkeypatch.setattr(sys, "argv", ["edgeseg", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "does not match" in captured.err


def test_validate_with_tolerances_switched_off_judges_agreement_only(exported):
    root, onnx_path, _ = exported
    args = [
        "validate",
        str(onnx_path),
        "--checkpoint",
        str(root / "b.pt"),
        "--json",
        "--atol",
        "off",
        "--min-agreement",
        "0",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tolerances"]["max_abs"] is None


def test_export_refuses_to_overwrite_without_force(exported):
    root, _, _ = exported
    path = root / "again.onnx"
    path.write_bytes(b"keep me")
    result = CliRunner().invoke(app, ["export", str(root / "b.pt"), "-o", str(path)])
    assert isinstance(result.exception, InputError) and result.exception.exit_code == 2
    assert "--force" in str(result.exception) and path.read_bytes() == b"keep me"
    args = ["export", str(root / "b.pt"), "-o", str(path), "--force", "--no-validate", "--no-simplify"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "not validated" in result.output and "not simplified" in result.output
    assert read_metadata(path).checkpoint_sha256 == file_sha256(root / "b.pt")


def test_static_argmax_preprocess_export_runs_on_raw_pixels(exported):
    root, _, _ = exported
    path = root / "labels.onnx"
    args = [
        "export",
        str(root / "a.pt"),
        "-o",
        str(path),
        "--static",
        "64x96",
        "--argmax",
        "--preprocess",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["validation"]["passed"] and report["static_size"] == [64, 96]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8)
    labels = session.run(None, {"input": image})[0]
    assert labels.dtype == np.uint8 and labels.shape == (1, 64, 96) and labels.max() < 8


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--static", "64by96"], "HxW"),
        (["--argmax", "--softmax"], "one of"),
        (["--opset", "99"], "onnxruntime"),
    ],
)
def test_bad_options_are_input_errors(exported, extra, message):
    root, _, _ = exported
    result = CliRunner().invoke(app, ["export", str(root / "a.pt"), "-o", str(root / "x.onnx"), *extra])
    assert isinstance(result.exception, InputError), result.output
    assert message in str(result.exception) and not (root / "x.onnx").exists()


def test_failed_gate_from_the_cli_prints_the_table(exported, monkeypatch):
    root, _, _ = exported

    def broken(*args, **kwargs):
        from edgeseg.export.validate import CheckRow, Tolerances, ValidationResult

        row = CheckRow(
            "random 1x129x97", max_abs_diff=0.5, agreement=0.5, passed=False, note="max |Δ| > 0.0001"
        )
        raise ParityFailed(
            "mismatch", ValidationResult(False, 0.5, 0.5, 0.5, None, None, [row], Tolerances())
        )

    monkeypatch.setattr("edgeseg.export.export_checkpoint", broken)
    result = CliRunner().invoke(app, ["export", str(root / "a.pt"), "-o", str(root / "y.onnx")])
    assert isinstance(result.exception, ParityFailed) and result.exception.exit_code == 1
    assert "FAILED" in result.stderr and "random 1x129x97" in result.stderr
