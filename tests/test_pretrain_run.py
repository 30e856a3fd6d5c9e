"""`edgeseg pretrain` and `edgeseg eval` of its checkpoint, through the Typer app; the checkpoint as
``model.pretrained`` of a segmentation run; exact resume; learning on a separable folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgeseg.checkpoint import load_checkpoint, model_from_checkpoint
from edgeseg.cli.main import app
from edgeseg.config import load_recipe
from edgeseg.errors import InputError
from edgeseg.models import ImageClassifier
from edgeseg.pretrain import load_pretrain_recipe, pretrain
from edgeseg.train import build_model

RECIPE = """
model: {name: dsnet, kwargs: {width_mult: 0.5}}
data: {synthetic_train: 14, synthetic_val: 7, synthetic_size: 32, crop_size: 32, batch_size: 7}
augment: {cutmix_prob: 0.5, mixup_prob: 0.5}
train: {epochs: 2, device: cpu}
pretrain: {label_smoothing: 0.1}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pretrain")
    (root / "tiny.yaml").write_text(RECIPE)
    result = CliRunner().invoke(app, ["pretrain", str(root / "tiny.yaml"), "-o", str(root / "run"), "-q"])
    assert result.exit_code == 0, result.output
    assert "best top-1" in result.output
    return root / "run"


def test_pretrain_writes_a_classifier_run(run: Path) -> None:
    assert {"best.pt", "last.pt", "metrics.jsonl", "recipe.yaml"} <= {p.name for p in run.iterdir()}
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert all({"top1", "top5", "best_top1", "loss"} <= set(r) for r in lines)
    assert all(0 <= r["top1"] <= r["top5"] <= 1 for r in lines)
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["model"]["name"] == "classifier" and ckpt["classes"][0] == "disc_stripes"
    assert isinstance(model_from_checkpoint(ckpt), ImageClassifier)


def test_eval_reports_top1_and_top5(run: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(run / "best.pt"), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    best = max(json.loads(x)["top1"] for x in (run / "metrics.jsonl").read_text().splitlines())
    assert figures["images"] == 7 and figures["top1"] == pytest.approx(best)
    text = CliRunner().invoke(app, ["eval", str(run / "best.pt"), "--set", "data.synthetic_val=14"])
    assert text.exit_code == 0 and "top-1" in text.output and "(14 images)" in text.output


def test_pretrained_checkpoint_starts_a_segmentation_recipe(run: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "seg.yaml"
    recipe.write_text(
        f"model: {{name: lraspp_dsnet, kwargs: {{width_mult: 0.5}}, pretrained: {run / 'best.pt'}}}\n"
        "train: {freeze: [backbone.stem, backbone.stages.0], lr_mult: {backbone: 0.1}}\n"
    )
    cfg = load_recipe(recipe)
    lines: list[str] = []
    model = build_model(cfg, 8, lines.append)
    state = load_checkpoint(run / "best.pt")["state_dict"]
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, state[f"backbone.{key}"])
    assert not any(p.requires_grad for p in model.backbone.stages[0].parameters())
    assert any("tensors loaded" in line for line in lines) and any("frozen" in line for line in lines)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(f"model: {{name: lraspp_dsnet, pretrained: {run / 'best.pt'}}}\n")
    with pytest.raises(InputError, match=r"backbone key .* has shape .*\(width_mult 0.5\)"):
        build_model(load_recipe(wrong), 8, lines.append)


def test_resume_continues_exactly(run: Path, tmp_path: Path) -> None:
    recipe = load_pretrain_recipe(run.parent / "tiny.yaml")
    pretrain(recipe, tmp_path / "cut", progress=False, log=lambda _: None, stop_after_steps=3)
    resumed = pretrain(recipe, tmp_path / "cut", resume=True, progress=False, log=lambda _: None)
    assert resumed.finished
    whole, cut = load_checkpoint(run / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, cut["state_dict"][key]), key


def test_pretrain_learns_a_separable_folder(tmp_path: Path) -> None:
    """Bright and dark images with noise: some epoch of 16 (64 steps of 8) must separate all 16 validation
    images (top-1 1.0). Evaluated every epoch: on 32 images the evaluated top-1 swings between epochs as the
    BatchNorm running statistics follow the weights, so one snapshot depends on the CPU's rounding (the
    8-epoch snapshot was 1.0 on an AMD EPYC and 0.56 on an Intel Xeon); a model that learns nothing
    stays at 0.5 in every epoch."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 16), ("val", 8)):
        for name, level in (("dark", 50), ("bright", 200)):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(level, 20, (36, 40, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / name / f"{i}.png")
    recipe = tmp_path / "folder.yaml"
    recipe.write_text(
        f"model: {{name: dsnet, kwargs: {{width_mult: 0.5}}}}\n"
        f"data: {{root: {tmp_path}, crop_size: 32, batch_size: 8, val_batch_size: 8}}\n"
        "augment: {enabled: false}\noptim: {lr: 0.01}\ntrain: {epochs: 16, eval_interval: 1, device: cpu}\n"
    )
    result = pretrain(load_pretrain_recipe(recipe), tmp_path / "run", progress=False, log=lambda _: None)
    assert result.best_miou == 1.0


def test_pretrain_input_errors(tmp_path: Path) -> None:
    (tmp_path / "train" / "only").mkdir(parents=True)
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(f"model: {{name: dsnet}}\ndata: {{root: {tmp_path}}}\n")
    result = CliRunner().invoke(app, ["pretrain", str(recipe), "-o", str(tmp_path / "run")])
    assert result.exit_code != 0 and "at least 2 class folders" in str(result.exception)
    assert not (tmp_path / "run").exists()
    recipe.write_text("model: {name: dsnet, kwargs: {output_stride: 16}}\n")
    result = CliRunner().invoke(app, ["pretrain", str(recipe), "-o", str(tmp_path / "run")])
    assert "takes width_mult and dropout, not output_stride" in str(result.exception)
    recipe.write_text("model: {name: lraspp_dsnet}\npretrain: {label_smoothing: 1.5}\n")
    result = CliRunner().invoke(app, ["pretrain", str(recipe)])
    assert "pretrain.label_smoothing" in str(result.exception)


RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("pretrain_*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_pretrain_recipes_load_and_build(path: Path) -> None:
    from edgeseg.pretrain.run import build_classifier

    recipe = load_pretrain_recipe(path)
    model = build_classifier(recipe, 7, lambda _: None)
    assert isinstance(model, ImageClassifier) and model.model_kwargs["backbone"] == recipe.model.name


def test_export_refuses_a_classifier(run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(run / "best.pt"), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code != 0 and "pretrained classifier" in str(result.exception)


def test_a_distillation_student_starts_from_the_pretrained_backbone(run: Path, tmp_path: Path) -> None:
    """The student of a distillation recipe is built with ``model.pretrained``: with its backbone frozen,
    the distilled student's backbone is still exactly the pretrained one."""
    from edgeseg.checkpoint import make_checkpoint, save_checkpoint
    from edgeseg.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE
    from edgeseg.distill.run import distill, load_distill_recipe
    from edgeseg.models import create

    torch.manual_seed(0)
    teacher = create("lraspp_dsnet", num_classes=8, width_mult=0.5)
    save_checkpoint(
        make_checkpoint(teacher, classes=SYNTHETIC_CLASSES, palette=SYNTHETIC_PALETTE), tmp_path / "t.pt"
    )
    recipe = tmp_path / "distill.yaml"
    recipe.write_text(
        f"model: {{name: lraspp_dsnet, kwargs: {{width_mult: 0.5}}, pretrained: {run / 'best.pt'}}}\n"
        "data: {synthetic_train: 4, synthetic_val: 2, synthetic_size: 32, crop_size: 32, batch_size: 2}\n"
        "train: {epochs: 1, device: cpu, freeze: [backbone]}\n"
        f"distill: {{teacher: {tmp_path / 't.pt'}, weights: {{ce: 1.0, kd: 1.0}}}}\n"
    )
    result = distill(load_distill_recipe(recipe), tmp_path / "run", progress=False, log=lambda _: None)
    student = load_checkpoint(result.last_path)["state_dict"]
    pretrained = load_checkpoint(run / "best.pt")["state_dict"]
    backbone = [k for k in pretrained if k.startswith("backbone.")]
    assert backbone and all(torch.equal(student[k], pretrained[k]) for k in backbone)


def test_pretrain_under_torchrun(tmp_path: Path) -> None:
    """Two CPU processes (gloo): rank 0 alone reports and writes; top-1/top-5 counted over both shards."""
    import os
    import subprocess
    import sys

    (tmp_path / "tiny.yaml").write_text(RECIPE.replace("epochs: 2", "epochs: 1"))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "edgeseg",
        "pretrain",
        str(tmp_path / "tiny.yaml"),
        "-o",
        str(tmp_path / "run"),
        "-q",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("best top-1") == 1
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["images"] == 7  # every validation image counted once
