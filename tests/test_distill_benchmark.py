"""benchmarks/distill.py: plateau evidence; a resumed benchmark reads finished runs back (no timing)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from edgeseg.errors import EdgesegError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "distill.py"
RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("distill_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plateau_compares_the_last_third_with_what_came_before(bench: ModuleType) -> None:
    flat = [[2, 0.30], [4, 0.40], [8, 0.41], [10, 0.414], [12, 0.412]]
    assert bench.plateau(flat, 12, 0.005) == {
        "last_third_from_epoch": 8,
        "gain": pytest.approx(0.004),
        "plateaued": True,
    }
    rising = [[3, 0.30], [6, 0.40], [9, 0.43], [12, 0.45]]
    result = bench.plateau(rising, 12, 0.005)
    assert result["gain"] == pytest.approx(0.05) and result["plateaued"] is False
    falling = [[3, 0.30], [6, 0.40], [9, 0.38], [12, 0.39]]  # a dip in the last third is still a plateau
    assert bench.plateau(falling, 12, 0.005)["plateaued"] is True
    assert bench.plateau([[12, 0.4]], 12, 0.005)["plateaued"] is None  # nothing to compare with


@pytest.mark.slow
def test_benchmark_writes_the_fields_and_resumes_without_retraining(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tiny = [
        "data.synthetic_size=32",
        "data.crop_size=32",
        "data.synthetic_train=8",
        "data.synthetic_val=4",
        "data.batch_size=4",
        "train.epochs=3",
        "train.eval_interval=1",
    ]
    args = [
        "--recipe",
        str(RECIPES / "distill_capacity_deeplabv3plus.yaml"),
        "--seeds",
        "1",
        "--work-dir",
        str(tmp_path / "runs"),
        "--out",
        str(tmp_path / "result"),
        "--bench-runs",
        "2",
    ]
    overrides = [arg for item in tiny for arg in ("--set", item, "--teacher-set", item)]
    overrides += ["--set", "distill.unlabelled_count=8"]  # the teacher labels 8 scenes: twice the steps/epoch
    overrides += ["--set", "distill.student_init=scratch"]  # the recipe's assistant is not trained here
    args += overrides
    assert bench.main(args) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    for key in (
        "teacher_model",
        "student_model",
        "alone_miou",
        "distilled_miou",
        "teacher_miou",
        "gap_closed",
        "seeds",
        "alone_at_plateau",
        "machine",
        "command",
    ):
        assert key in result
    assert result["teacher_model"]["kwargs"]["backbone"] == "resnet18c"
    seed0 = result["per_seed"]["0"]
    # the student alone trains for the distilled run's optimizer steps: 3 epochs of 8 + 8 images = 6 of 8
    assert result["alone_epochs"] == 6
    assert [e for e, _ in seed0["alone_run"]["curve"]] == [1, 2, 3, 4, 5, 6]
    assert [e for e, _ in seed0["distilled_run"]["curve"]] == [1, 2, 3]
    assert seed0["alone_run"]["plateau"]["last_third_from_epoch"] == 4
    assert seed0["alone"] == seed0["alone_run"]["curve"][-1][1]
    assert "Validation curves" in (tmp_path / "result.md").read_text()

    metrics = tmp_path / "runs" / "alone_s0" / "metrics.jsonl"
    before = metrics.read_text()
    assert bench.main([*args, "--resume"]) == 0  # every run finished: read back, nothing retrained
    again = json.loads((tmp_path / "result.json").read_text())
    assert metrics.read_text() == before
    assert again["per_seed"]["0"]["alone"] == seed0["alone"]
    assert again["per_seed"]["0"]["distilled"] == seed0["distilled"]
    assert again["teacher_run"]["curve"] == result["teacher_run"]["curve"]

    # the longer-schedule check trains only the new run and reports it beside the table
    assert bench.main([*args, "--resume", "--long-alone", "2"]) == 0
    longer = json.loads((tmp_path / "result.json").read_text())
    assert metrics.read_text() == before
    la = longer["long_alone"]
    assert la["epochs"] == 12 and [e for e, _ in la["runs"]["0"]["curve"]] == list(range(1, 13))
    long0 = la["runs"]["0"]["final_miou"]
    assert la["final_miou"]["values"] == [long0]
    assert la["lift_over_schedule"] == [pytest.approx(long0 - seed0["alone"])]
    assert la["distilled_minus_long"] == pytest.approx(seed0["distilled"] - long0)
    assert la["gap_to_teacher"] == pytest.approx(longer["teacher_miou"] - long0)
    assert (
        "at 2x the schedule (12 epochs), against the same seed at 6 epochs"
        in (tmp_path / "result.md").read_text()
    )

    # more seeds of the student alone: trains only alone_s1, keeps the paired figures, reports every seed
    assert bench.main([*args, "--resume", "--long-alone", "2", "--alone-seeds", "2"]) == 0
    more = json.loads((tmp_path / "result.json").read_text())
    assert metrics.read_text() == before
    assert not (tmp_path / "runs" / "distill_s1").exists()
    extra = more["alone_only_seeds"]["1"]
    assert [e for e, _ in extra["curve"]] == [1, 2, 3, 4, 5, 6]
    assert more["alone_miou"] == longer["alone_miou"] and more["gap_closed"] == longer["gap_closed"]
    assert more["alone_miou_every_seed"]["values"] == [seed0["alone"], extra["final_miou"]]
    assert "Student alone over all 2 seeds" in (tmp_path / "result.md").read_text()

    # the longer schedule for the extra seed too: trains only alone_long_s1, against alone_s1
    long0_metrics = (tmp_path / "runs" / "alone_long_s0" / "metrics.jsonl").read_text()
    longer_both = ["--long-alone", "2", "--alone-seeds", "2", "--long-alone-seeds", "2"]
    assert bench.main([*args, "--resume", *longer_both]) == 0
    both = json.loads((tmp_path / "result.json").read_text())["long_alone"]
    assert (tmp_path / "runs" / "alone_long_s0" / "metrics.jsonl").read_text() == long0_metrics
    long1 = both["runs"]["1"]["final_miou"]
    assert both["final_miou"]["values"] == [long0, long1]
    assert both["lift_over_schedule"][1] == pytest.approx(long1 - extra["final_miou"])
    assert "Longer schedule, 2 seed(s)" in (tmp_path / "result.md").read_text()

    # another factor trains in its own folder beside the 2x runs, which stay as they were
    assert bench.main([*args, "--resume", "--long-alone", "3"]) == 0
    three = json.loads((tmp_path / "result.json").read_text())["long_alone"]
    assert three["epochs"] == 18 and (tmp_path / "runs" / "alone_long3_s0" / "best.pt").is_file()
    assert (tmp_path / "runs" / "alone_long_s0" / "metrics.jsonl").read_text() == long0_metrics

    # on a machine without those folders, the result file's runs stand in: only the runs it lacks train
    moved = tmp_path / "moved"
    reuse = [
        "--work-dir",
        str(moved),
        "--out",
        str(tmp_path / "moved"),
        "--reuse",
        str(tmp_path / "result.json"),
    ]
    more_seeds = ["--long-alone", "3", "--alone-seeds", "2", "--long-alone-seeds", "2"]
    assert bench.main([*args, *reuse, *more_seeds]) == 0
    taken = json.loads((tmp_path / "moved.json").read_text())
    assert sorted(p.name for p in moved.iterdir()) == ["alone_long3_s1", "alone_s1"]
    assert set(taken["reused"]) == {"teacher", "alone_s0", "distill_s0", "alone_long_s0"}
    assert taken["reused"]["alone_s0"]["file"] == str(tmp_path / "result.json")
    assert taken["per_seed"]["0"]["alone_run"]["curve"] == seed0["alone_run"]["curve"]
    assert taken["per_seed"]["0"]["alone_run"]["plateau"] == seed0["alone_run"]["plateau"]  # judged again
    assert (
        taken["distilled_miou"] == result["distilled_miou"]
        and taken["teacher_miou"] == result["teacher_miou"]
    )
    assert taken["long_alone"]["runs"]["0"]["curve"] == three["runs"]["0"]["curve"]
    assert [e for e, _ in taken["long_alone"]["runs"]["1"]["curve"]] == list(range(1, 19))
    assert taken["params"] == result["params"] and taken["costs_measured"]["file"] == str(
        tmp_path / "result.json"
    )
    report = (tmp_path / "moved.md").read_text()
    assert "`alone_s0`" in report and "the model costs" in report
    # each seed at the shortest schedule that reached its plateau: under a tolerance that every 3x run of
    # moved.json meets, --long-alone 4 --extend-unplateaued trains nothing and reports those runs
    extended = [*args, "--work-dir", str(moved), "--out", str(tmp_path / "extended"), "--resume"]
    extended += ["--reuse", str(tmp_path / "moved.json"), "--extend-unplateaued", "--plateau-tolerance", "1"]
    assert bench.main([*extended, "--long-alone", "4", "--alone-seeds", "2", "--long-alone-seeds", "2"]) == 0
    assert sorted(p.name for p in moved.iterdir()) == ["alone_long3_s1", "alone_s1"]
    kept = json.loads((tmp_path / "extended.json").read_text())["long_alone"]
    assert [(run["factor"], run["epochs"]) for run in kept["runs"].values()] == [(3, 18), (3, 18)]
    assert kept["runs"]["1"]["curve"] == taken["long_alone"]["runs"]["1"]["curve"]
    assert kept["at_plateau"] and "each seed at the shortest of 3x" in (tmp_path / "extended.md").read_text()
    # a file from other settings is refused before anything trains
    with pytest.raises(SystemExit):
        bench.parse_args(["--reuse"])
    other = [*args, *reuse, "--out", str(tmp_path / "other"), "--set", "train.eval_interval=2"]
    assert bench.main(other) != 0
    assert not (tmp_path / "other.json").exists()

    # --jobs 2: the teacher and the student alone train side by side, the distilled student after the teacher
    # (it would fail without the teacher's checkpoint); the same figures as run one by one
    parallel = [
        "--recipe",
        str(RECIPES / "distill_capacity_deeplabv3plus.yaml"),
        "--seeds",
        "1",
        "--work-dir",
        str(tmp_path / "parallel"),
        "--out",
        str(tmp_path / "parallel_result"),
        "--bench-runs",
        "2",
        "--jobs",
        "2",
    ]
    parallel += overrides
    assert bench.main(parallel) == 0
    in_pool = json.loads((tmp_path / "parallel_result.json").read_text())
    assert in_pool["teacher_run"]["curve"] == result["teacher_run"]["curve"]
    both = in_pool["per_seed"]["0"]
    assert both["alone_run"]["curve"] == seed0["alone_run"]["curve"]
    assert both["distilled_run"]["curve"] == seed0["distilled_run"]["curve"]


def test_reuse_needs_a_result_file_of_the_same_settings(bench: ModuleType, tmp_path: Path) -> None:
    prior = tmp_path / "prior.json"
    prior.write_text(json.dumps({"per_seed": {}, "recipe": "recipes/a.yaml", "epochs": 34}))
    assert bench.load_reuse(str(prior), {"recipe": "recipes/a.yaml", "epochs": 34})["epochs"] == 34
    with pytest.raises(EdgesegError, match=r"prior.json: its epochs is 34, this run's is 12"):
        bench.load_reuse(str(prior), {"recipe": "recipes/a.yaml", "epochs": 12})
    with pytest.raises(EdgesegError, match=r"missing.json: cannot read a result file"):
        bench.load_reuse(str(tmp_path / "missing.json"), {})
    prior.write_text("{}")
    with pytest.raises(EdgesegError, match=r"prior.json: not a result file"):
        bench.load_reuse(str(prior), {})


def test_jobs_must_be_positive(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--jobs", "0"])
    assert "--jobs: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_long_alone_seeds_must_have_a_run_at_the_schedule(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    args = bench.parse_args(["--seeds", "3", "--long-alone", "2", "--long-alone-seeds", "3"])
    assert args.long_alone_seeds == 3
    with pytest.raises(SystemExit):
        bench.parse_args(["--seeds", "2", "--long-alone", "2", "--long-alone-seeds", "3"])
    assert "--long-alone-seeds: expected 1..2 (the seeds trained alone at the schedule), got 3" in (
        capsys.readouterr().err
    )


def test_extend_unplateaued_keeps_the_seeds_at_their_plateau(bench: ModuleType) -> None:
    flat = [[2, 0.30], [4, 0.40], [8, 0.41], [10, 0.414], [12, 0.412]]
    rising = [[3, 0.30], [6, 0.40], [9, 0.43], [12, 0.45]]
    prior = {
        "long_alone": {"factor": 2, "epochs": 12, "runs": {"0": {"curve": flat}, "1": {"curve": rising}}},
        "command": "python benchmarks/distill.py --long-alone 2",
        "machine": {"description": "a CPU"},
    }
    kept = bench.plateaued_long_runs(prior, "prior.json", 3, 0.005)
    assert list(kept) == ["alone_long_s0"]  # seed 1 rose by 2 points over its last third: it trains longer
    assert kept["alone_long_s0"]["factor"] == 2 and kept["alone_long_s0"]["epochs"] == 12
    assert kept["alone_long_s0"]["measured"] == {
        "file": "prior.json",
        "command": "python benchmarks/distill.py --long-alone 2",
        "machine": "a CPU",
    }
    assert list(bench.plateaued_long_runs(prior, "prior.json", 3, 0.05)) == ["alone_long_s0", "alone_long_s1"]
    with pytest.raises(EdgesegError, match=r"--long-alone 2 is not longer than the 2x schedule"):
        bench.plateaued_long_runs(prior, "prior.json", 2, 0.005)
    with pytest.raises(EdgesegError, match=r"--reuse prior.json: no longer-schedule runs"):
        bench.plateaued_long_runs({"long_alone": None}, "prior.json", 3, 0.005)


def test_extend_unplateaued_needs_a_longer_schedule_and_a_result_file(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--long-alone", "4", "--extend-unplateaued"])
    assert "--extend-unplateaued: needs --long-alone F and --reuse RESULT.json" in capsys.readouterr().err


def test_a_longer_schedule_that_no_longer_lifts_a_seed_is_its_plateau(bench: ModuleType) -> None:
    shorter = {
        "factor": 4,
        "epochs": 16,
        "runs": {"0": {"final_miou": 0.477}, "1": {"final_miou": 0.467}, "2": {"final_miou": 0.44}},
    }
    # seed 0 kept from the file; seed 1 ends lower at 5x than at 4x; seed 2 still rises
    long_runs = {
        0: {"factor": 4, "epochs": 16, "final_miou": 0.477, "plateau": {"plateaued": True}},
        1: {"factor": 5, "epochs": 20, "final_miou": 0.45, "plateau": {"plateaued": False}},
        2: {"factor": 5, "epochs": 20, "final_miou": 0.49, "plateau": {"plateaued": False}},
    }
    args = bench.parse_args(["--long-alone", "5"])
    got = bench.over_shorter_schedules(shorter, long_runs, args, teacher=0.57, distilled=0.535)
    assert "over_shorter_schedule" not in long_runs[0]
    assert long_runs[1]["over_shorter_schedule"]["lift"] == pytest.approx(-0.017)
    assert long_runs[1]["over_shorter_schedule"]["lifted"] is False
    assert long_runs[2]["over_shorter_schedule"]["lifted"] is True
    assert got["plateau_by_seed"] == {
        "0": "flat over the last third",
        "1": "no lift over the shorter schedule",
        "2": None,
    }
    assert got["at_plateau_flat_or_no_lift"] is False
    best = got["best_over_schedules"]
    assert best["values"] == [0.477, 0.467, 0.49]  # each seed's best final mIoU over the schedules
    mean = (0.477 + 0.467 + 0.49) / 3
    assert best["mean"] == pytest.approx(mean)
    assert best["gap_closed"] == pytest.approx((0.535 - mean) / (0.57 - mean))
    la = {"runs": {str(k): v for k, v in long_runs.items()}, **got}
    text = "\n".join(bench.shorter_schedule_lines(la))
    assert "- seed 1: 0.4500 at 20 epochs against 0.4670 at 16: -1.7 points (no lift)" in text
    assert "in every seed: NO (seed 0: flat over the last third" in text
    assert "seed 2: NOT at its plateau" in text
