"""``edgeseg distill`` end to end on a tiny synthetic config: run, saved student, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
import yaml
from typer.testing import CliRunner

from edgeseg.checkpoint import (
    file_sha256,
    load_checkpoint,
    make_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from edgeseg.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE
from edgeseg.models import create

runner = CliRunner()

TINY = {
    "model": {"name": "unet_ds", "kwargs": {"width_mult": 0.25, "depth": 2}},
    "data": {
        "root": "synthetic", "crop_size": 32, "batch_size": 4, "synthetic_train": 8, "synthetic_val": 4,
        "synthetic_size": 32,
    },
    "augment": {"mixup_prob": 0.5, "cutmix_prob": 0.5},
    "optim": {"lr": 0.01},
    "train": {"epochs": 3, "device": "cpu"},
    "distill": {
        "teacher": "",
        "teacher_recipe": "recipes/unet.yaml",
        "weights": {"ce": 1.0, "kd": 1.0, "cwd": 0.5, "feature": 1.0},
        "feature_pairs": {"c1": "c1", "decoder": "decoder"},
    },
}  # fmt: skip


def _app():
    from edgeseg.cli.main import app

    return app


def _teacher(
    path: Path, classes: list[str] = SYNTHETIC_CLASSES, name: str = "unet", **kwargs: object
) -> Path:
    """A teacher checkpoint with random weights (seed 0): a small U-Net unless ``name``/``kwargs`` say."""
    torch.manual_seed(0)
    model = create(name, num_classes=len(classes), **(kwargs or {"base_channels": 8, "depth": 2}))
    palette = (SYNTHETIC_PALETTE * 2)[: len(classes)]
    save_checkpoint(make_checkpoint(model, classes=classes, palette=palette), path)
    return path


def _recipe(tmp_path: Path, teacher: Path | str) -> Path:
    raw = json.loads(json.dumps(TINY))
    raw["distill"]["teacher"] = str(teacher)
    path = tmp_path / "distill_tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _invoke(*args: str):
    return runner.invoke(_app(), ["distill", *args], catch_exceptions=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path, Path, str]:
    """One distillation run, 1 epoch (the recipe says 3: --set must win)."""
    tmp = tmp_path_factory.mktemp("distill")
    teacher = _teacher(tmp / "teacher.pt")
    teacher_sha = file_sha256(teacher)
    recipe = _recipe(tmp, teacher)
    result = _invoke(str(recipe), "-o", str(tmp / "run"), "--set", "train.epochs=1", "--quiet")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "teacher mIoU" in result.output and "student best mIoU" in result.output
    return tmp, teacher, recipe, teacher_sha


def test_run_writes_an_ordinary_student_checkpoint(run) -> None:
    tmp, teacher, _, _ = run
    best = load_checkpoint(tmp / "run" / "best.pt")
    assert best["model"]["name"] == "unet_ds" and best["epoch"] == 1
    assert not any("adapter" in k or "convs." in k for k in best["state_dict"])
    student = model_from_checkpoint(best)  # strict load: no extra keys
    assert best["recipe"]["distill"]["teacher"] == str(teacher)
    onnx_path = tmp / "student.onnx"
    x = torch.randn(1, 3, 32, 32)
    torch.onnx.export(
        student, x, str(onnx_path), input_names=["input"], output_names=["output"], dynamo=False
    )
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, student(x).numpy(), atol=1e-4)
    last = load_checkpoint(tmp / "run" / "last.pt")
    assert set(last["train_state"]["extra_modules"]) == {"adapters"}
    assert not any(k.startswith("teacher") for k in last["state_dict"])


def test_metrics_report_teacher_once_and_each_distillation_part(run) -> None:
    tmp, _, _, _ = run
    records = [json.loads(line) for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    refs = [r for r in records if r["event"] == "reference"]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert len(refs) == 1 and refs[0]["name"] == "teacher" and 0 <= refs[0]["miou"] <= 1
    assert len(epochs) == 1 and 0 <= epochs[0]["miou"] <= 1
    assert {"loss_ce", "loss_kd", "loss_cwd", "loss_feature"} <= set(epochs[0])


def test_teacher_file_is_unchanged_by_the_run(run) -> None:
    _, teacher, _, teacher_sha = run
    assert file_sha256(teacher) == teacher_sha


def test_resume_continues_and_refuses_to_overwrite(run) -> None:
    tmp, _, recipe, _ = run
    again = _invoke(str(recipe), "-o", str(tmp / "run"), "--set", "train.epochs=1", "--quiet")
    assert again.exit_code != 0 and "--force" in str(again.exception)
    resumed = _invoke("--resume", str(tmp / "run"), "--set", "train.epochs=2", "--quiet")
    assert resumed.exit_code == 0, resumed.output + repr(resumed.exception)
    assert load_checkpoint(tmp / "run" / "last.pt")["epoch"] == 2
    records = [json.loads(line) for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2]
    assert sum(r["event"] == "reference" for r in records) == 1


def test_missing_or_unreadable_teacher_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "best.pt"
    result = _invoke(str(_recipe(tmp_path, missing)), "-o", str(tmp_path / "r1"), "--quiet")
    assert result.exit_code != 0 and str(missing) in str(result.exception)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    result = _invoke(str(_recipe(tmp_path, junk)), "-o", str(tmp_path / "r2"), "--quiet")
    assert result.exit_code != 0 and str(junk) in str(result.exception)


def test_teacher_with_other_classes_is_refused(tmp_path: Path) -> None:
    teacher = _teacher(tmp_path / "other.pt", classes=["background", "cat", "dog"])
    result = _invoke(str(_recipe(tmp_path, teacher)), "-o", str(tmp_path / "r"), "--quiet")
    assert result.exit_code != 0
    message = str(result.exception)
    assert str(teacher) in message and "3 classes" in message
    assert f"{len(SYNTHETIC_CLASSES)} classes" in message


def test_unknown_feature_name_and_distill_key_are_clear_errors(tmp_path: Path) -> None:
    teacher = _teacher(tmp_path / "t.pt")
    recipe = str(_recipe(tmp_path, teacher))
    result = _invoke(recipe, "-o", str(tmp_path / "r"), "--set", "distill.feature_pairs={c9: c1}", "--quiet")
    assert result.exit_code != 0 and "student has no feature 'c9'" in str(result.exception)
    result = _invoke(recipe, "-o", str(tmp_path / "r"), "--set", "distill.weights.kdd=1", "--quiet")
    assert result.exit_code != 0 and "distill.weights.kd" in str(result.exception)


def test_onnx_teacher_runs_from_the_command_line(run) -> None:
    """``--set distill.teacher=teacher.onnx``: the logit losses run against ONNX Runtime, and the teacher's
    mIoU is the checkpoint's."""
    from edgeseg.export import export_checkpoint

    tmp, teacher, recipe, _ = run
    onnx_teacher = tmp / "teacher.onnx"
    export_checkpoint(teacher, onnx_teacher)
    args = [str(recipe), "-o", str(tmp / "onnx_run"), "--set", f"distill.teacher={onnx_teacher}", "--quiet"]
    result = _invoke(*args, "--set", "distill.weights.feature=0", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output + repr(result.exception)
    records = [json.loads(x) for x in (tmp / "onnx_run" / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(x) for x in (tmp / "run" / "metrics.jsonl").read_text().splitlines()][0]
    assert records[0]["event"] == "reference" and reference["event"] == "reference"
    assert records[0]["miou"] == pytest.approx(reference["miou"], abs=2e-3)
    assert {"loss_ce", "loss_kd", "loss_cwd"} <= set(records[1]) and "loss_feature" not in records[1]
    feature = _invoke(*args, "--force")  # the recipe's feature KD
    assert feature.exit_code != 0
    message = str(feature.exception)
    assert "needs a PyTorch teacher checkpoint" in message and "\n" not in message


def test_label_only_distillation_is_training_the_student_alone(tmp_path: Path) -> None:
    """The teacher, drawn into the run through fit's set-up hook, moves no random draw: with only the label
    loss, a distillation run ends with the very weights and figures of ``fit`` on the same recipe."""
    from edgeseg.config import Recipe
    from edgeseg.distill import SECTIONS, distill
    from edgeseg.train import fit

    raw = json.loads(json.dumps(TINY))
    raw["train"]["epochs"] = 1
    raw["distill"].update(teacher=str(_teacher(tmp_path / "t.pt")), weights={"ce": 1.0, "kd": 0.0})
    quiet = {"progress": False, "log": lambda message: None}
    distill(Recipe.from_dict(raw, sections=SECTIONS), tmp_path / "distilled", **quiet)
    del raw["distill"]
    fit(Recipe.from_dict(raw), tmp_path / "alone", **quiet)
    a = load_checkpoint(tmp_path / "alone" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "distilled" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    def epochs(run: Path) -> list[dict]:
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        drop = ("time_s", "images_per_s")
        return [{k: v for k, v in r.items() if k not in drop} for r in lines if r["event"] == "epoch"]

    assert epochs(tmp_path / "alone") == epochs(tmp_path / "distilled")


def test_teacher_until_stops_the_teacher_terms_part_way(tmp_path: Path) -> None:
    """The loop tells the objective how far the run is: with ``teacher_until: 0.5`` over two epochs the
    teacher terms are in the first epoch's losses and not in the second's."""
    from edgeseg.config import Recipe
    from edgeseg.distill import SECTIONS, distill

    raw = json.loads(json.dumps(TINY))
    raw["train"]["epochs"] = 2
    raw["distill"].update(teacher=str(_teacher(tmp_path / "t.pt")), teacher_until=0.5)
    distill(Recipe.from_dict(raw, sections=SECTIONS), tmp_path / "run", progress=False, log=lambda m: None)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first, second = [r for r in lines if r["event"] == "epoch"]
    assert {"loss_kd", "loss_cwd", "loss_feature"} <= set(first)
    assert not {"loss_kd", "loss_cwd", "loss_feature"} & set(second) and "loss_ce" in second
