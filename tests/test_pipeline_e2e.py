"""``edgeseg pipeline`` end to end on a tiny own Pascal-VOC folder: files, figures, numbers, resume, gates.

One pipeline run (module fixture) on a VOC-layout folder whose ``classes.txt`` names the classes; its report's
figures are recomputed with ``edgeseg eval`` and ``edgeseg validate`` through the CLI and must agree.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from edgeseg.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, generate_scene
from edgeseg.errors import GateFailed, InputError
from edgeseg.runtime import mask_image

pytestmark = pytest.mark.slow  # the whole job end to end: ~20 s

runner = CliRunner()
CLASSES = ["sky", *(name.replace("_", "-") for name in SYNTHETIC_CLASSES[1:])]  # own names, same labels
MODELS = ("teacher", "student", "distilled", "int8")
STAGES = ("teacher", "student", "distilled", "export_teacher", "export_student", "export_distilled",
          "quantize", "evaluate", "bench", "report")  # fmt: skip


def _app():
    from edgeseg.cli.main import app

    return app


def make_voc(root: Path, train: int = 8, val: int = 4, size: tuple[int, int] = (48, 56)) -> Path:
    """A Pascal-VOC folder of synthetic scenes: JPEG images, palette PNG masks (a 255 border), split lists."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = {"train": [], "val": []}
    for i in range(train + val):
        image, label = generate_scene(rng, *size)
        label = label.astype(np.uint8)
        label[:, :2] = 255
        stem = f"scene_{i:03d}"
        Image.fromarray(image).save(root / "JPEGImages" / f"{stem}.jpg", quality=95)
        mask_image(label, SYNTHETIC_PALETTE).save(root / "SegmentationClass" / f"{stem}.png")
        names["train" if i < train else "val"].append(stem)
    for split, stems in names.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    lines = [
        f"{name} {' '.join(map(str, rgb))}" for name, rgb in zip(CLASSES, SYNTHETIC_PALETTE, strict=True)
    ]
    (root / "classes.txt").write_text("\n".join(lines) + "\n")
    return root


def tiny_recipe(path: Path, data_root: Path) -> Path:
    raw = {
        "data": {"root": str(data_root), "crop_size": 32, "batch_size": 4},
        "augment": {"scale": [0.8, 1.25]},
        "teacher": {
            "model": {"name": "unet", "kwargs": {"base_channels": 8, "depth": 2}},
            "optim": {"lr": 0.01},
            "train": {"epochs": 1, "device": "cpu"},
        },
        "student": {
            "model": {"name": "lraspp_dsnet", "kwargs": {"width_mult": 0.25}},
            "optim": {"lr": 0.01},
            "train": {"epochs": 1, "device": "cpu"},
        },
        "distill": {"weights": {"ce": 1.0, "kd": 1.0}, "kd_tau": 2.0},
        "export": {"val_images": 3},
        "quantize": {"calib_size": 4, "val_size": 4, "max_drop": 100.0},
        "bench": {"runs": 3, "warmup": 1, "threads": 1},
        "report": {"samples": 2},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def _pipeline(*args: str):
    return runner.invoke(_app(), ["pipeline", *args, "--quiet"], catch_exceptions=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path, dict]:
    """The tiny pipeline, run once: (recipe, output folder, report.json)."""
    tmp = tmp_path_factory.mktemp("pipeline")
    recipe = tiny_recipe(tmp / "tiny.yaml", make_voc(tmp / "voc"))
    out = tmp / "out"
    result = _pipeline(str(recipe), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "report:" in result.output
    (tmp / "console.txt").write_text(result.output)
    return recipe, out, json.loads((out / "report.json").read_text())


def _cli_json(argv: list[str]) -> dict:
    result = runner.invoke(_app(), argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_every_file_and_figure_is_written(run) -> None:
    _, out, report = run
    for name in ("teacher", "student", "distilled", "distilled_int8"):
        assert (out / "models" / f"{name}.onnx").stat().st_size > 1000
    for key in ("teacher", "student", "distilled"):
        for name in ("best.pt", "last.pt", "metrics.jsonl"):
            assert (out / "runs" / key / name).is_file()
    for stage in STAGES:
        assert json.loads((out / "stages" / f"{stage}.json").read_text())["stage"] == stage
    markdown = (out / "report.md").read_text()
    assert set(report["figures"]) == {"curves", "pareto", "samples"}
    for figure in report["figures"].values():
        with Image.open(out / figure) as png:
            assert png.format == "PNG" and min(png.size) > 300
        assert f"]({figure})" in markdown
    assert list(report["models"]) == list(MODELS)
    for m in report["models"].values():
        assert f"| {m['label']} | {m['network']} | {100 * m['miou']:.2f} |" in markdown
    assert report["models"]["teacher"]["network"] == "unet (base_channels=8, depth=2)"
    assert report["models"]["int8"]["network"] == "lraspp_dsnet ×0.25 width"
    assert "accuracy gate" in markdown and "Distillation:" in markdown
    env = report["bench"]["environment"]
    assert f"Measured on: {env['description']}" in markdown and env["threads"] == 1
    assert "instruction_sets" in env and env["onnxruntime"]["version"] in env["description"]
    assert yaml.safe_load((out / "pipeline.yaml").read_text())["student"]["baseline"] is True


def test_console_output_says_things_once_and_keeps_table_rows_whole(run) -> None:
    _, out, report = run
    lines = (out.parent / "console.txt").read_text().splitlines()
    assert sum(line.startswith("data: ") for line in lines) == 1
    assert sum(line.startswith("INT8: mIoU") for line in lines) == 1
    for m in report["models"].values():  # one table row per model, its label not wrapped
        row = re.compile(rf"^ ?{re.escape(m['label'])} +{100 * m['miou']:.2f} ")
        assert sum(bool(row.match(line)) for line in lines) == 1, m["label"]
    assert max(len(line) for line in lines) <= 80


def test_class_names_come_from_the_folders_classes_txt(run) -> None:
    _, out, report = run
    assert report["data"]["classes"] == CLASSES
    assert (report["data"]["train_images"], report["data"]["val_images"]) == (8, 4)
    assert set(report["models"]["teacher"]["onnx_metrics"]["per_class_iou"]) == set(CLASSES)


def test_report_numbers_are_sane_and_complete(run) -> None:
    _, _, report = run
    models = report["models"]
    for m in models.values():
        assert 0.0 <= m["miou"] <= 1.0 and 0.0 <= m["pixel_acc"] <= 1.0
        assert m["params"] > 0 and m["gflops"] > 0 and m["file_size"] > 0
        assert 0 < m["latency"]["p50_ms"] <= m["latency"]["p90_ms"] and m["latency"]["throughput_ips"] > 0
        assert m["parity"]["agreement"] is not None and m["parity"]["max_abs_diff"] is not None
    assert models["teacher"]["gflops"] > models["distilled"]["gflops"]
    assert models["int8"]["params"] == models["distilled"]["params"]
    assert models["int8"]["file_size"] < models["distilled"]["file_size"]
    assert report["int8"]["passed"] is True and report["int8"]["gate"]["precision"] == "int8"
    d = report["distillation"]
    assert d["gain"] == pytest.approx(models["distilled"]["miou"] - models["student"]["miou"])
    assert report["bench"]["settings"]["size"] == [48, 56] and report["bench"]["settings"]["runs"] == 3


def test_report_agrees_with_edgeseg_eval(run) -> None:
    _, _, report = run
    commands = report["reproduce"]
    for key, m in report["models"].items():
        got = _cli_json(commands["eval_onnx"][key])
        assert got["miou"] == pytest.approx(m["miou"], abs=1e-12)
        assert got["pixel_acc"] == pytest.approx(m["pixel_acc"], abs=1e-12)
        if key == "int8":
            continue
        torch_side = _cli_json(commands["eval_checkpoint"][key])
        assert torch_side["miou"] == pytest.approx(m["torch_metrics"]["miou"], abs=1e-12)
        assert m["delta_miou"] == pytest.approx(m["miou"] - torch_side["miou"], abs=1e-12)
    assert report["models"]["int8"]["delta_miou"] == pytest.approx(
        report["models"]["int8"]["miou"] - report["models"]["distilled"]["miou"]
    )


def test_report_parity_agrees_with_edgeseg_validate(run) -> None:
    _, _, report = run
    for key, argv in report["reproduce"]["validate"].items():
        parity = report["models"][key]["parity"]
        got = _cli_json(argv)
        assert got["passed"] is True and parity["passed"] is True
        assert got["max_abs_diff"] == pytest.approx(parity["max_abs_diff"], rel=1e-3, abs=1e-7)
        assert got["agreement"] == pytest.approx(parity["agreement"], abs=1e-9)
        assert got["miou_torch"] == pytest.approx(parity["miou_torch"], abs=1e-12)


def test_rerun_reuses_every_stage_and_refuses_changed_settings(run) -> None:
    recipe, out, _ = run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    result = _pipeline(str(recipe), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.count("reused") == len(STAGES)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    changed = runner.invoke(_app(), ["pipeline", str(recipe), "-o", str(out), "--set", "bench.runs=2"])
    assert isinstance(changed.exception, InputError) and changed.exception.exit_code == 2
    assert "stage 'bench' cannot be reused" in str(changed.exception) and "--force" in str(changed.exception)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_failed_int8_gate_leaves_a_report_without_int8(run, tmp_path: Path) -> None:
    recipe, out, _ = run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    gate = ["--set", "quantize.max_drop=-1", "--set", "quantize.max_float_nodes=0"]
    result = _pipeline(str(recipe), "-o", str(copy), *gate, "--force")
    assert result.exit_code == 0, result.output
    report = json.loads((copy / "report.json").read_text())
    assert report["int8"]["passed"] is False and "gate failed" in report["int8"]["message"]
    assert "int8" not in report["models"] and not (copy / "models" / "distilled_int8.onnx").exists()
    assert "refused the INT8 model" in (copy / "report.md").read_text()
    for stage in ("teacher", "student", "distilled", "export_distilled"):  # untouched by the change
        assert (copy / "stages" / f"{stage}.json").read_text() == (
            out / "stages" / f"{stage}.json"
        ).read_text()
    required = runner.invoke(_app(), ["pipeline", str(recipe), "-o", str(copy), *gate, "--set",
                                      "quantize.required=true", "--quiet"])  # fmt: skip
    assert isinstance(required.exception, GateFailed) and required.exception.exit_code == 1
    assert "quantize.required" in str(required.exception) and (copy / "report.md").is_file()


def test_killed_training_stage_resumes_from_last_checkpoint(run, tmp_path: Path) -> None:
    from edgeseg.pipeline import load_pipeline_recipe
    from edgeseg.pipeline.training import train_stage
    from edgeseg.train import fit

    recipe_path, _, _ = run
    student = load_pipeline_recipe(recipe_path).student_recipe()
    run_dir = tmp_path / "student"
    partial = fit(student, run_dir, progress=False, log=lambda _m: None, stop_after_steps=1)  # 1 of 2 steps
    assert not partial.finished and not (run_dir / "best.pt").exists()
    messages: list[str] = []
    result = train_stage(student, run_dir, progress=False, log=messages.append)
    assert result["resumed"] is True and result["best_epoch"] == 1
    assert any("resuming" in m and "iteration 1" in m for m in messages)
    assert (run_dir / "best.pt").is_file()
    other = load_pipeline_recipe(recipe_path, ["student.optim.lr=0.5"]).student_recipe()
    with pytest.raises(InputError, match="holds a training run of another recipe"):
        train_stage(other, run_dir, progress=False, log=messages.append)
