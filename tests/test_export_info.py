"""``edgeseg info`` and ``edgeseg.export.onnx_info``: what a file holds, and clear errors for bad files."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from edgeseg.cli.main import app, main
from edgeseg.errors import InputError
from edgeseg.export.info import onnx_info
from edgeseg.export.metadata import write_metadata
from edgeseg.runtime.metadata import ModelMetadata


@pytest.fixture()
def model_path(tmp_path):
    """A dynamic 1×1-convolution 'segmenter' (3 → 5 classes) with edgeseg metadata."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [5, 3, 1, 1], np.ones(15).tolist())
    bias = helper.make_tensor("b", TensorProto.FLOAT, [5], np.zeros(5).tolist())
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w", "b"], ["logits"]),
            helper.make_node("Relu", ["logits"], ["output"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 5, "height", "width"])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    write_metadata(
        model, ModelMetadata(model_name="tiny", classes=list("abcde"), palette=[[i, i, i] for i in range(5)])
    )
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    return path


def test_info_describes_inputs_outputs_ops_and_metadata(model_path):
    info = onnx_info(model_path)
    assert info["inputs"] == [{"name": "input", "dtype": "float32", "shape": ["batch", 3, "height", "width"]}]
    assert info["outputs"][0]["shape"] == ["batch", 5, "height", "width"]
    assert info["opset"] == {"ai.onnx": 17} and info["nodes"] == 2 and info["ops"] == {"Conv": 1, "Relu": 1}
    assert info["parameters"] == 20 and info["file_size"] == model_path.stat().st_size
    assert info["edgeseg"]["classes"] == list("abcde") and info["metadata"]["model_name"] == "tiny"


def test_info_cli_json_and_table(model_path):
    result = CliRunner().invoke(app, ["info", str(model_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["edgeseg"]["model_name"] == "tiny"
    result = CliRunner().invoke(app, ["info", str(model_path)])
    assert result.exit_code == 0 and "Conv" in result.output and "batch×3×height×width" in result.output
    assert "palette" in result.output


def _bad_files(tmp_path, model_path):
    data = model_path.read_bytes()
    files = {
        "missing.onnx": None,
        "empty.onnx": b"",
        "text.onnx": b"this is not a model\n" * 20,
        "truncated.onnx": data[: len(data) // 2],
        "random.onnx": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    }
    for name, content in files.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    return [tmp_path / name for name in files]


def test_bad_files_raise_input_error_naming_the_file(tmp_path, model_path):
    for path in _bad_files(tmp_path, model_path):
        with pytest.raises(InputError, match=path.name):
            onnx_info(path)


def test_bad_files_exit_2_with_one_line_and_no_traceback(tmp_path, model_path, monkeypatch, capsys):
    monkeypatch.delenv("EDGESEG_TRACEBACK", raising=False)
    for path in _bad_files(tmp_path, model_path):
        monkeypatch.setattr(sys, "argv", ["edgeseg", "info", str(path)])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 2, path.name
        err = capsys.readouterr().err
        assert err.startswith("error:") and path.name in err and "Traceback" not in err
