"""Pipeline recipes, stage markers and the report's pure parts: no training, no export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edgeseg.errors import InputError
from edgeseg.pipeline import load_pipeline_recipe
from edgeseg.pipeline.config import fingerprint
from edgeseg.pipeline.figures import ParetoPoint, pareto_front
from edgeseg.pipeline.report import _distill_method, data_overrides, distillation_summary, reproduce_commands
from edgeseg.pipeline.stages import StageBook

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_quickstart_recipe_loads_and_builds_stage_recipes() -> None:
    spec = load_pipeline_recipe(QUICKSTART)
    teacher, student = spec.teacher_recipe(), spec.student_recipe()
    assert spec.student.baseline is True
    assert teacher.model != student.model
    assert teacher.data == student.data == spec.recipe.data
    distill = spec.distill_recipe("t.pt")
    assert distill.section("distill").teacher == "t.pt"
    assert distill.model == student.model and distill.train == student.train
    assert "teacher" in spec.to_dict() and "train" not in spec.to_dict()
    assert teacher.augment == student.augment == spec.recipe.augment  # shared, unless a stage has its own
    assert spec.section("export").checkpoint == "last"  # no model selection on the reported split


def test_quickstart_student_can_inherit_the_teacher_weights() -> None:
    from edgeseg.distill.inherit import inherit_weights
    from edgeseg.models import create

    spec = load_pipeline_recipe(QUICKSTART)
    assert spec.distill_recipe("t.pt").section("distill").student_init == "teacher"
    teacher, student = spec.teacher_recipe().model, spec.student_recipe().model
    report = inherit_weights(
        create(student.name, num_classes=8, **student.kwargs),
        create(teacher.name, num_classes=8, **teacher.kwargs),
    )
    assert not report.kept and report.selected


def test_a_stage_augment_section_replaces_the_shared_one() -> None:
    spec = load_pipeline_recipe(QUICKSTART, ["student.augment.cutmix_prob=0.5"])
    teacher, student = spec.teacher_recipe(), spec.student_recipe()
    assert teacher.augment == spec.recipe.augment and teacher.augment.cutmix_prob == 0
    assert student.augment == spec.student.augment and student.augment.cutmix_prob == 0.5
    assert spec.distill_recipe("t.pt").augment == student.augment


def test_overrides_reach_every_section(tmp_path: Path) -> None:
    spec = load_pipeline_recipe(
        QUICKSTART,
        ["teacher.train.epochs=1", "student.baseline=false", "quantize.max_drop=2.5", "data.synthetic_val=7",
         "bench.size=[48, 40]"],
    )  # fmt: skip
    assert spec.teacher_recipe().train.epochs == 1
    assert spec.student.baseline is False
    assert spec.section("quantize").max_drop == 2.5
    assert spec.student_recipe().data.synthetic_val == 7
    assert spec.section("bench").size == [48, 40]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("student.trian.epochs=1", "student.train"),
        ("teacher.train.epoch=1", "teacher.train.epochs"),
        ("quantize.max_dorp=1", "quantize.max_drop"),
        ("benhc.runs=3", "bench"),
    ],
)
def test_unknown_keys_name_the_closest_valid_key(override: str, expected: str) -> None:
    with pytest.raises(InputError, match=f"did you mean '{expected}'"):
        load_pipeline_recipe(QUICKSTART, [override])


def test_misplaced_and_conflicting_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no top-level train; use teacher.train / student.train"):
        load_pipeline_recipe(QUICKSTART, ["train.epochs=1"])
    with pytest.raises(InputError, match="distill.teacher is set by the pipeline"):
        load_pipeline_recipe(QUICKSTART, ["distill.teacher=x.pt"])
    with pytest.raises(InputError, match="teacher.checkpoint .*does not exist"):
        load_pipeline_recipe(QUICKSTART, [f"teacher.checkpoint={tmp_path / 'missing.pt'}"])
    with pytest.raises(InputError, match="not both"):
        load_pipeline_recipe(QUICKSTART, ["teacher.checkpoint=a.pt", "teacher.recipe=b.yaml"])
    with pytest.raises(InputError, match="pipeline recipe not found"):
        load_pipeline_recipe(tmp_path / "nope.yaml")


def test_teacher_recipe_file_is_merged_under_inline_keys(tmp_path: Path) -> None:
    teacher_file = _write(tmp_path / "teacher.yaml", {
        "model": {"name": "unet", "kwargs": {"base_channels": 8, "depth": 2}},
        "data": {"root": "elsewhere"},
        "optim": {"lr": 0.005},
        "train": {"epochs": 9, "seed": 3},
    })  # fmt: skip
    pipeline = _write(tmp_path / "p.yaml", {
        "data": {"synthetic_size": 48},
        "teacher": {"recipe": str(teacher_file), "train": {"epochs": 2}},
    })  # fmt: skip
    teacher = load_pipeline_recipe(pipeline, ["teacher.optim.weight_decay=0.01"]).teacher_recipe()
    assert teacher.model.kwargs == {"base_channels": 8, "depth": 2}
    assert (teacher.train.epochs, teacher.train.seed) == (2, 3)
    assert (teacher.optim.lr, teacher.optim.weight_decay) == (0.005, 0.01)
    assert teacher.data.root == "synthetic" and teacher.data.synthetic_size == 48  # the pipeline's data
    bad = _write(tmp_path / "bad_teacher.yaml", {"model": {"nmae": "unet"}})
    with pytest.raises(InputError, match="did you mean 'model.name'"):
        load_pipeline_recipe(_write(tmp_path / "q.yaml", {"teacher": {"recipe": str(bad)}}))


def test_stage_book_reuses_matching_markers_and_refuses_changed_ones(tmp_path: Path) -> None:
    book = StageBook(tmp_path, force=False)
    output = tmp_path / "models" / "a.onnx"
    output.parent.mkdir()
    output.write_text("x")
    fp = fingerprint({"lr": 0.1})
    assert book.completed("export_a", fp) is None
    book.save("export_a", fp, [output], {"value": 1}, 2.0)
    record = book.completed("export_a", fingerprint({"lr": 0.1}))
    assert record is not None and record.results == {"value": 1} and record.outputs == ["models/a.onnx"]
    with pytest.raises(
        InputError, match="stage 'export_a' cannot be reused: it was done with other settings"
    ):
        book.completed("export_a", fingerprint({"lr": 0.2}))
    assert StageBook(tmp_path, force=True).completed("export_a", fingerprint({"lr": 0.2})) is None
    output.unlink()
    with pytest.raises(InputError, match=r"its outputs are missing \(models/a.onnx\)"):
        book.completed("export_a", fp)
    book.path("broken").write_text("{not json")
    with pytest.raises(InputError, match="broken.json is not a pipeline stage marker"):
        book.read("broken")


def test_fingerprint_ignores_key_order_and_sees_values() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_pareto_front_keeps_only_undominated_points() -> None:
    points = [
        ParetoPoint("teacher", "t", 10.0, 0.9, 1.0),
        ParetoPoint("student", "s", 2.0, 0.6, 0.1),
        ParetoPoint("distilled", "d", 2.0, 0.7, 0.1),
        ParetoPoint("int8", "q", 1.0, 0.69, 0.1),
        ParetoPoint("slow", "x", 12.0, 0.5, 1.0),
    ]
    assert [p.key for p in pareto_front(points)] == ["int8", "distilled", "teacher"]


def test_distillation_summary_and_data_overrides() -> None:
    from edgeseg.data.config import DataConfig

    rows = {"teacher": {"miou": 0.8}, "student": {"miou": 0.6}, "distilled": {"miou": 0.7}}
    summary = distillation_summary(rows)
    assert summary is not None
    assert summary["gain"] == pytest.approx(0.1) and summary["gap_closed"] == pytest.approx(0.5)
    assert distillation_summary({"teacher": {"miou": 0.8}, "distilled": {"miou": 0.7}}) is None
    args = data_overrides(DataConfig(root="synthetic", synthetic_size=48, resize=40, crop_size=32))
    assert args == ["--set", "data.resize=40", "--set", "data.synthetic_size=48"]  # crop_size: training only
    own = data_overrides(DataConfig(root="own", synthetic_size=48, split_seed=3))
    assert own == ["--set", "data.split_seed=3"]  # the synthetic generator's settings do not apply
    assert json.dumps(args)  # plain strings, ready for a command line


def test_check_commands_read_the_reports_validation_images() -> None:
    """The report's ``edgeseg validate`` commands carry the data settings, so they see the same images."""
    from edgeseg.data import build_dataset
    from edgeseg.data.config import DataConfig
    from edgeseg.export.from_checkpoint import load_samples

    data = DataConfig(root="synthetic", synthetic_size=40, synthetic_val=3, crop_size=32, batch_size=2)
    commands = reproduce_commands({"student": {"onnx": "s.onnx", "checkpoint": "s.pt"}}, data, 2)
    validate = commands["validate"]["student"]
    sets = [validate[i + 1] for i, arg in enumerate(validate) if arg == "--set"]
    assert sets == ["data.synthetic_val=3", "data.synthetic_size=40"]
    assert [a for a in commands["eval_onnx"]["student"] if a.startswith("data.")] == sets
    pipeline_side = build_dataset("synthetic", "val", data)
    cli_side = load_samples("synthetic", 2, overrides=sets)
    assert len(cli_side) == 2
    for i, (image, mask) in enumerate(cli_side):
        assert image.shape == (40, 40, 3)
        assert (image == pipeline_side[i][0]).all() and (mask == pipeline_side[i][1]).all()


def test_report_says_how_the_student_was_distilled() -> None:
    settings = {"weights": {"ce": 1.0, "kd": 0.0, "cwd": 3.0, "feature": 1.0}, "cwd_tau": 8.0,
                "student_init": "teacher"}  # fmt: skip
    assert _distill_method(settings) == (
        "; losses: labels, CWD ×3 (τ 8), feature KD ×1; student initialised from the teacher's weights "
        "(weight selection)"
    )
    assert _distill_method({"weights": {"kd": 2.0}, "kd_tau": 4.0}) == "; losses: pixel KD ×2 (τ 4)"
    assert _distill_method(None) == ""
