"""`edgeseg train` and `edgeseg eval` through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.checkpoint import load_checkpoint
from edgeseg.cli.main import app
from edgeseg.errors import InputError

RECIPE = """
model: {name: unet, kwargs: {base_channels: 8, depth: 2}}
data: {synthetic_train: 8, synthetic_val: 4, synthetic_size: 48, crop_size: 48, batch_size: 4}
train: {epochs: 1, device: cpu}
"""
DATA = ["--set", "data.synthetic_size=48", "--set", "data.synthetic_val=4"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    recipe = root / "tiny.yaml"
    recipe.write_text(RECIPE)
    result = CliRunner().invoke(
        app, ["train", str(recipe), "-o", str(root / "run"), "-q", "--set", "train.seed=2"]
    )
    assert result.exit_code == 0, result.output
    assert "best mIoU" in result.output
    return root / "run"


def test_train_writes_the_run_folder(run: Path) -> None:
    assert {"best.pt", "last.pt", "metrics.jsonl", "recipe.yaml"} <= {p.name for p in run.iterdir()}
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["epoch"] == 1
    assert load_checkpoint(run / "best.pt")["recipe"]["train"]["seed"] == 2  # --set reached the recipe


def test_train_refuses_an_existing_run_and_bad_keys(run: Path) -> None:
    recipe = run.parent / "tiny.yaml"
    result = CliRunner().invoke(app, ["train", str(recipe), "-o", str(run)])
    assert isinstance(result.exception, InputError) and "--force" in str(result.exception)
    result = CliRunner().invoke(app, ["train", str(recipe), "--set", "train.epoch=2"])
    assert isinstance(result.exception, InputError) and "train.epochs" in str(result.exception)
    result = CliRunner().invoke(app, ["train"])
    assert isinstance(result.exception, InputError) and "--resume" in str(result.exception)


def test_eval_json_matches_training(run: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(run / "best.pt"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    ckpt = load_checkpoint(run / "best.pt")
    assert set(out) == {"miou", "pixel_acc", "per_class_iou"}
    assert list(out["per_class_iou"]) == ckpt["classes"]
    assert 0.0 <= out["miou"] <= 1.0 and 0.0 <= out["pixel_acc"] <= 1.0
    assert out["miou"] == pytest.approx(ckpt["metrics"]["miou"], abs=1e-9)
    table = CliRunner().invoke(app, ["eval", str(run / "best.pt"), "--data", "synthetic"])
    assert table.exit_code == 0 and "mIoU" in table.output and ckpt["classes"][1] in table.output


def test_eval_onnx_compares_with_the_checkpoint(run: Path) -> None:
    from edgeseg.export import export_checkpoint

    onnx_path = run.parent / "model.onnx"
    export_checkpoint(run / "best.pt", onnx_path)
    onnx = CliRunner().invoke(app, ["eval", str(onnx_path), "--data", "synthetic", *DATA, "--json"])
    assert onnx.exit_code == 0, onnx.output
    torch_run = CliRunner().invoke(
        app, ["eval", str(run / "best.pt"), "--data", "synthetic", *DATA, "--json"]
    )
    a, b = json.loads(onnx.output), json.loads(torch_run.output)
    assert a["miou"] == pytest.approx(b["miou"], abs=0.01) and a["pixel_acc"] == pytest.approx(
        b["pixel_acc"], abs=0.01
    )


def test_eval_reads_the_data_settings_stored_in_the_model(run: Path) -> None:
    """Checkpoint and ONNX file carry the recipe's data settings (48 px, 4 images, not the generator's
    defaults); ``eval`` uses them without being told, says so, and the two agree with training's figure."""
    import onnx

    from edgeseg.export import export_checkpoint, read_metadata

    onnx_path = run.parent / "stored.onnx"
    export_checkpoint(run / "best.pt", onnx_path, force=True)
    stored = read_metadata(onnx_path).data
    assert (stored["root"], stored["synthetic_size"], stored["synthetic_val"]) == ("synthetic", 48, 4)
    ckpt = load_checkpoint(run / "best.pt")
    outputs = {}
    for path in (run / "best.pt", onnx_path):
        result = CliRunner().invoke(app, ["eval", str(path), "--json"])
        assert result.exit_code == 0, result.output
        outputs[path.suffix] = json.loads(result.output)
        table = CliRunner().invoke(app, ["eval", str(path)])
        assert "evaluated on synthetic dataset" in table.output and "4 images" in table.output
        assert "synthetic_size=48" in table.output and "the model's own" in table.output
    assert outputs[".pt"]["miou"] == pytest.approx(ckpt["metrics"]["miou"], abs=1e-9)
    assert outputs[".onnx"]["miou"] == pytest.approx(outputs[".pt"]["miou"], abs=1e-3)
    # the generator's defaults (128 px, 200 images) give other images: the stored settings were used
    default = CliRunner().invoke(
        app, ["eval", str(onnx_path), "--set", "data.synthetic_size=128", "--set", "data.synthetic_val=200"]
    )
    assert "synthetic_size=128" in default.output and "200 images" in default.output
    # a file without data settings (another tool's export) must be told what to evaluate on
    proto = onnx.load(onnx_path)
    kept = [p for p in proto.metadata_props if p.key != "data"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    bare = run.parent / "bare.onnx"
    onnx.save(proto, bare)
    missing = CliRunner().invoke(app, ["eval", str(bare)])
    assert isinstance(missing.exception, InputError) and "--data" in str(missing.exception)


def test_resume_continues_a_copy_of_the_run(run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    result = CliRunner().invoke(app, ["train", "--resume", str(copy), "-q", "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "epoch 2" in result.output
    lines = [json.loads(x) for x in (copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert load_checkpoint(copy / "last.pt")["train_state"]["epoch"] == 2
