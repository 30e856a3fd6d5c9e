"""Steps of an export on their own: simplification fallbacks, exporter checks, the parity gate's API."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from test_export_api import FrozenScaleNet, PaddingNet

from edgeseg.errors import EdgesegError
from edgeseg.export import ParityFailed, Tolerances, to_onnx, torch_export, validate_onnx
from edgeseg.export import simplify as simplify_module


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models run far faster on one thread than on two contended ones; restored afterwards."""
    yield


def test_onnxslim_takes_over_when_onnxsim_fails(tmp_path, monkeypatch):
    def broken(model):
        raise RuntimeError("boom")

    monkeypatch.setattr(simplify_module, "_with_onnxsim", broken)
    report = to_onnx(PaddingNet(), tmp_path / "m.onnx")
    assert report.simplifier == "onnxslim" and "onnxsim failed: RuntimeError: boom" in report.simplify_note
    assert report.nodes_final < report.nodes_exported and report.validation.passed


def test_unsimplified_graph_is_kept_when_both_simplifiers_fail(tmp_path, monkeypatch):
    def missing(model):
        raise ImportError("not installed")

    monkeypatch.setattr(simplify_module, "_with_onnxsim", missing)
    monkeypatch.setattr(simplify_module, "_with_onnxslim", missing)
    report = to_onnx(PaddingNet(), tmp_path / "m.onnx", validate=False)
    assert report.simplifier is None and report.nodes_final == report.nodes_exported
    assert "onnxsim is not installed" in report.simplify_note
    assert "onnxslim is not installed" in report.simplify_note


def test_a_simplifier_that_changes_the_outputs_is_blamed(tmp_path, monkeypatch):
    real = simplify_module._with_onnxsim

    def scaling(model):
        out = real(model)
        first = next(t for t in out.graph.initializer if len(t.dims) == 4)
        first.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(first) * 2, first.name))
        return out

    monkeypatch.setattr(simplify_module, "_with_onnxsim", scaling)
    with pytest.raises(ParityFailed, match="unsimplified graph passes: onnxsim changed the outputs"):
        to_onnx(PaddingNet(), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_exporter_that_cannot_reach_the_opset_says_so(tmp_path, monkeypatch):
    def opset18(module, example, opset, in_axes):
        return torch_export._export_torchscript(module, example, 18, in_axes, {0: "batch"})

    monkeypatch.setattr(torch_export, "_export_dynamo", opset18)
    with pytest.raises(EdgesegError, match="produced opset 18, not the requested 17.*--opset 18"):
        to_onnx(PaddingNet(), tmp_path / "m.onnx", exporter="dynamo", opset=17)


def test_parity_gate_api_with_onnx_and_callable_references(tmp_path):
    path = to_onnx(PaddingNet(), tmp_path / "m.onnx", validate=False).path
    same = validate_onnx(path, path)
    assert same.passed and same.max_abs_diff == 0.0 and same.agreement == 1.0 and same.miou_torch is None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def shifted(x: np.ndarray) -> np.ndarray:
        return session.run(None, {"input": x})[0] + 1e-3

    strict = validate_onnx(path, shifted)
    assert not strict.passed and strict.max_abs_diff == pytest.approx(1e-3, rel=1e-2)
    assert strict.failures and all("max |Δ| > 0.0001" in f for f in strict.failures)
    assert validate_onnx(path, shifted, tolerances=Tolerances(max_abs=None)).passed
    with pytest.raises(ParityFailed):
        validate_onnx(path, shifted, raise_on_failure=True)


def test_parity_gate_on_real_images_measures_miou(tmp_path):
    path = to_onnx(PaddingNet(), tmp_path / "m.onnx", validate=False).path
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(2)]
    samples = [(image, rng.integers(0, 4, (40, 56))) for image in images]
    samples[0][1][:5] = 255  # ignored pixels
    result = validate_onnx(path, PaddingNet(), samples=samples)
    assert result.passed and result.miou_torch == pytest.approx(result.miou_onnx, abs=1e-3)
    assert 0.0 < result.miou_torch < 1.0
    assert [r.name for r in result.rows][-2:] == ["real images", "mIoU"]
    assert result.rows[-2].shape == "2 images"
    assert validate_onnx(path, FrozenScaleNet(), samples=samples).miou_delta is not None


@pytest.mark.slow
def test_dynamo_follows_what_the_tracer_freezes(tmp_path):
    """What the TorchScript tracer exports wrongly, dynamo exports right, as the error message suggests."""
    report = to_onnx(FrozenScaleNet(), tmp_path / "m.onnx", exporter="dynamo", opset=18)
    assert report.validation.passed and report.exporter == "dynamo" and report.opset == 18
    shape = onnx.load(report.path).graph.input[0].type.tensor_type.shape
    dims = [d.dim_param or d.dim_value for d in shape.dim]
    assert dims == ["batch", 3, "height", "width"]
