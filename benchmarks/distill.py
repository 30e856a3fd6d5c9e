"""Benchmark: does distillation beat the student trained alone, and what does the student cost?

Trains (or takes ``--teacher CKPT``) the teacher of a distillation recipe, then, for each seed, the student
alone (the recipe without its ``distill`` section, i.e. the plain label loss) and the distilled student, under
the same schedule, seed, initial weights and data order (unless the recipe starts the student from the
teacher's weights, ``distill.student_init: teacher``). Reports the teacher's mIoU, the student-alone and
distilled mIoU (mean ± sample std over seeds, final epoch — no selection on the validation split), the share
of the teacher–student gap closed, and the parameter, FLOP and ONNX Runtime latency ratios of student to
teacher. Plateau evidence: every run's validation curve (from its ``metrics.jsonl``) and the largest gain
over the last third of the schedule; a student alone whose gain there exceeds 0.5 mIoU points is reported
as not at its plateau. Each run's training time and the machine (CPU model, instruction sets, threads,
ONNX Runtime version) are recorded. ``--resume`` continues the runs in ``--work-dir`` (a run that finished
is read back, not retrained), so a table that takes hours can be built across sessions; ``--reuse
RESULT.json`` takes the runs that an earlier result file of the same benchmark recorded where their folders
are gone (a session on a new machine): only the missing runs train, and the report says which runs came from
where. Writes ``<out>.md`` and ``<out>.json`` (default ``benchmarks/results/distill``).

    python benchmarks/distill.py                                  # DeepLabV3+-R50 → DeepLabV3+-MobileNetV2
    python benchmarks/distill.py --recipe recipes/distill_unet.yaml
    python benchmarks/distill.py --recipe recipes/distill_lraspp_dsnet.yaml   # wide LR-ASPP → LR-ASPP
    python benchmarks/distill.py --recipe recipes/distill_unet_lraspp.yaml --teacher runs/unet/best.pt \
        --teacher-command "edgeseg train recipes/unet.yaml ..."   # a teacher trained beforehand
    python benchmarks/distill.py --epochs 1 --seeds 1 --set data.synthetic_train=64   # smoke run
    python benchmarks/distill.py --recipe recipes/distill_capacity_unet.yaml \
        --work-dir runs/bench_capacity_unet --out benchmarks/results/distill_capacity_unet --resume
    python benchmarks/distill.py ... --long-alone-seeds 3 --resume \
        --reuse benchmarks/results/distill_capacity_unet_small.json   # add a seed on another machine
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeseg.bench.machine import machine_info
from edgeseg.errors import EdgesegError
from edgeseg.fileio import check_writable, write_text_atomic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="recipes/distill_deeplabv3plus.yaml", help="distillation recipe")
    p.add_argument("--teacher", help="teacher checkpoint (default: train distill.teacher_recipe first)")
    p.add_argument("--teacher-command", help="how the --teacher checkpoint was trained (for the results)")
    p.add_argument("--data", help="dataset folder (default: the recipes' data, synthetic)")
    p.add_argument("--epochs", type=int, help="student epochs (alone and distilled)")
    p.add_argument("--teacher-epochs", type=int, help="teacher epochs when it is trained here")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (train.seed = 0, 1, ...)")
    p.add_argument("--set", dest="sets", action="append", default=[], help="override for the student runs")
    p.add_argument("--teacher-set", action="append", default=[], help="override for the teacher run")
    p.add_argument("--work-dir", default="runs/bench_distill", help="folder for the runs")
    p.add_argument("--out", default="benchmarks/results/distill", help="results path without suffix")
    p.add_argument("--bench-runs", type=int, default=30, help="ONNX Runtime timed runs per model")
    p.add_argument("--force", action="store_true", help="overwrite earlier results and runs")
    p.add_argument("--resume", action="store_true", help="continue the runs in --work-dir")
    p.add_argument(
        "--plateau-tolerance",
        type=float,
        default=0.005,
        help="largest mIoU gain over the last third of the schedule that counts as a plateau",
    )
    p.add_argument(
        "--long-alone",
        type=int,
        default=0,
        metavar="F",
        help="also train the student alone for F times the schedule (seed 0; --long-alone-seeds for more): "
        "does more training lift it?",
    )
    p.add_argument(
        "--long-alone-seeds",
        type=int,
        default=1,
        metavar="N",
        help="with --long-alone: the longer schedule for seeds 0..N-1 (each also trained alone at the "
        "schedule, paired or --alone-seeds)",
    )
    p.add_argument(
        "--alone-seeds",
        type=int,
        default=0,
        metavar="N",
        help="train the student alone for seeds 0..N-1 (N > --seeds): more seeds of the plateau evidence; "
        "gain and gap closed stay those of the paired seeds",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="train up to N runs at once, each in its own process: the students alone beside the teacher, "
        "the distilled ones after it (set OMP_NUM_THREADS so that N processes fit the cores)",
    )
    p.add_argument(
        "--reuse",
        metavar="RESULT.json",
        help="an earlier result file of this benchmark (same recipe, overrides and schedule): its recorded "
        "runs stand in for runs that have no folder in --work-dir, so only the missing runs train",
    )
    p.add_argument(
        "--extend-unplateaued",
        action="store_true",
        help="with --long-alone F and --reuse: a seed whose longer run in the --reuse file (a shorter "
        "factor) is at its plateau keeps that run; only the others train at F times the schedule (each seed "
        "at the shortest schedule that reached its plateau)",
    )
    p.add_argument("--progress", action="store_true", help="show progress bars")
    args = p.parse_args(argv)
    if args.extend_unplateaued and not (args.reuse and args.long_alone > 1):
        p.error("--extend-unplateaued: needs --long-alone F and --reuse RESULT.json")
    if args.jobs < 1:
        p.error(f"--jobs: expected an integer >= 1, got {args.jobs}")
    most = max(args.seeds, args.alone_seeds)
    if not 1 <= args.long_alone_seeds <= most:
        p.error(
            f"--long-alone-seeds: expected 1..{most} (the seeds trained alone at the schedule), "
            f"got {args.long_alone_seeds}"
        )
    return args


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def gap_closed(distilled: float, alone: float, teacher: float) -> float | None:
    """Share of the teacher–student gap that distillation closes (None when the student alone is not below
    the teacher)."""
    gap = teacher - alone
    return (distilled - alone) / gap if gap > 0 else None


def percent_words(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.0f} %"


def run_curve(run_dir: Path) -> dict[str, Any]:
    """A run's validation curve ``[[epoch, mIoU], ...]`` and training seconds, from its ``metrics.jsonl``."""
    from edgeseg.train.rundir import METRICS, MetricsLog

    records = [r for r in MetricsLog(run_dir / METRICS).read() if r.get("event") == "epoch"]
    return {
        "curve": [[r["epoch"], r["miou"]] for r in records if "miou" in r],
        "train_seconds": sum(r.get("time_s", 0.0) for r in records),
    }


def plateau(curve: list[list[float]], epochs: int, tolerance: float) -> dict[str, Any]:
    """Gain of the best mIoU of the last third of ``epochs`` over the best before it; plateaued if small."""
    cut = epochs - epochs // 3
    before = [m for e, m in curve if e <= cut]
    after = [m for e, m in curve if e > cut]
    if not before or not after:
        return {"last_third_from_epoch": cut, "gain": None, "plateaued": None}
    gain = max(after) - max(before)
    return {"last_third_from_epoch": cut, "gain": gain, "plateaued": gain <= tolerance}


def long_alone_dir(work: Path, factor: int, seed: int) -> Path:
    """The folder of the student alone at ``factor`` times the schedule: ``alone_long_s<seed>`` at 2x (the
    first factor measured, whose folders have no factor in the name), ``alone_long<factor>_s<seed>`` else, so
    runs at several factors share a --work-dir."""
    return work / (f"alone_long_s{seed}" if factor == 2 else f"alone_long{factor}_s{seed}")


def train_options(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """How ``fit``/``distill`` is called for ``run_dir``: resumed from its ``last.pt`` with ``--resume``."""
    resume = args.resume and (run_dir / "last.pt").is_file()
    return {"resume": resume, "force": not resume, "progress": args.progress}


def run_info(args: argparse.Namespace, recipe: Any, run_dir: Path, seconds: float) -> dict[str, Any]:
    """A finished run's curve, times and plateau evidence; ``seconds``: the wall time of this call."""
    info = run_curve(run_dir)
    info["wall_seconds_this_call"] = seconds
    info["final_miou"] = float(info["curve"][-1][1])
    info["plateau"] = plateau(info["curve"], recipe.train.epochs, args.plateau_tolerance)
    return info


def load_reuse(path: str, current: dict[str, Any]) -> dict[str, Any]:
    """The earlier result file ``path``, checked against this run's settings: each key of ``current`` (recipe,
    overrides, teacher, data, schedule, distill settings) must have the same value there."""
    try:
        prior = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise EdgesegError(f"--reuse {path}: cannot read a result file ({err})") from err
    if not isinstance(prior, dict) or "per_seed" not in prior:
        raise EdgesegError(f"--reuse {path}: not a result file of benchmarks/distill.py (no per_seed)")
    current = json.loads(json.dumps(current))  # tuples as lists, int keys as strings: as the file has them
    recorded = flat(prior)
    for key, value in flat(current).items():
        if recorded.get(key) != value:
            raise EdgesegError(f"--reuse {path}: its {key} is {recorded.get(key)!r}, this run's is {value!r}")
    return prior


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}`` (lists and other values as they are)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def recorded_runs(prior: dict[str, Any], path: str, factor: int) -> dict[str, dict[str, Any]]:
    """The runs an earlier result file recorded, by this script's run names, each with where it was measured
    (kept from the first file when that file had taken it from another)."""
    runs: dict[str, dict[str, Any]] = {}
    if prior.get("teacher_run"):
        runs["teacher"] = prior["teacher_run"]
    for seed, v in prior["per_seed"].items():
        runs[f"alone_s{seed}"] = v["alone_run"]
        runs[f"distill_s{seed}"] = {**v["distilled_run"], "teacher_miou": prior["teacher_miou"]}
    for seed, run in (prior.get("alone_only_seeds") or {}).items():
        runs[f"alone_s{seed}"] = run
    la = prior.get("long_alone")
    if la and la["factor"] == factor:
        runs.update({f"alone_long_s{seed}": run for seed, run in la["runs"].items()})
    where = measured_where(prior, path)
    return {name: {**run, "measured": run.get("measured", where)} for name, run in runs.items()}


def plateaued_long_runs(
    prior: dict[str, Any], path: str, factor: int, tolerance: float
) -> dict[str, dict[str, Any]]:
    """The longer-schedule runs of the result file ``path`` that are at their plateau (judged again under
    ``tolerance``), by this script's run names, each with its factor, epochs and where it was measured; for
    ``--extend-unplateaued``, whose ``factor`` must be larger than the file's."""
    la = prior.get("long_alone")
    if not la:
        raise EdgesegError(f"--reuse {path}: no longer-schedule runs (--long-alone) to extend")
    if la["factor"] >= factor:
        raise EdgesegError(
            f"--extend-unplateaued: --long-alone {factor} is not longer than the {la['factor']}x schedule "
            f"of {path}"
        )
    where = measured_where(prior, path)
    runs = {}
    for seed, run in la["runs"].items():
        epochs = run.get("epochs", la["epochs"])
        again = plateau(run["curve"], epochs, tolerance)
        if again["plateaued"]:
            runs[f"alone_long_s{seed}"] = {
                **run,
                "plateau": again,
                "factor": run.get("factor", la["factor"]),
                "epochs": epochs,
                "measured": run.get("measured", where),
            }
    return runs


def over_shorter_schedules(
    shorter: dict[str, Any],
    long_runs: dict[int, dict[str, Any]],
    args: argparse.Namespace,
    teacher: float,
    distilled: float,
) -> dict[str, Any]:
    """``--extend-unplateaued``: each seed trained longer here against its run at the --reuse file's shorter
    schedule. A seed is at its plateau when its curve is flat over the last third (the 0.5-point rule) or
    when the longer schedule no longer lifts its final mIoU by more than the tolerance: the rule within one
    run also counts what the decay of the learning rate adds at its end. The gap closed is also given against
    each seed's best final mIoU over the schedules (the harder bar)."""
    best, how = [], {}
    for seed, run in long_runs.items():
        before = shorter["runs"].get(str(seed))
        if run["factor"] == args.long_alone and before is not None:
            lift = run["final_miou"] - before["final_miou"]
            run["over_shorter_schedule"] = {
                "factor": shorter["factor"],
                "epochs": before.get("epochs", shorter["epochs"]),
                "final_miou": before["final_miou"],
                "lift": lift,
                "lifted": lift > args.plateau_tolerance,
            }
            best.append(max(run["final_miou"], before["final_miou"]))
        else:
            best.append(run["final_miou"])
        if run["plateau"]["plateaued"]:
            how[str(seed)] = "flat over the last third"
        elif not run.get("over_shorter_schedule", {"lifted": True})["lifted"]:
            how[str(seed)] = "no lift over the shorter schedule"
        else:
            how[str(seed)] = None
    b_mean, b_std = mean_std(best)
    gap = teacher - b_mean
    return {
        "plateau_by_seed": how,
        "at_plateau_flat_or_no_lift": all(how.values()),
        "best_over_schedules": {
            "values": best,
            "mean": b_mean,
            "std": b_std,
            "gap_to_teacher": gap,
            "distilled_minus_best": distilled - b_mean,
            "gap_closed": gap_closed(distilled, b_mean, teacher),
        },
    }


def measured_where(prior: dict[str, Any], path: str) -> dict[str, Any]:
    """Where the figures of the result file ``path`` were measured: the file, its command and machine."""
    machine = prior.get("machine") or {}
    return {"file": path, "command": prior.get("command"), "machine": machine.get("description")}


def train_or_resume(args: argparse.Namespace, train, recipe: Any, run_dir: Path, log) -> dict[str, Any]:
    """Train (or, with ``--resume``, continue) one run; return its curve, times and plateau evidence."""
    t0 = time.perf_counter()
    train(recipe, run_dir, **train_options(args, run_dir), log=log)
    return run_info(args, recipe, run_dir, time.perf_counter() - t0)


def run_all(
    args: argparse.Namespace,
    runs: dict[str, tuple[Any, Any, Path]],
    log,
    needs: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every ``name: (train, recipe, run_dir)`` through :func:`train_or_resume`, ``--jobs`` at a time.

    ``needs`` maps a run to the run it waits for (the distilled students wait for a teacher trained here;
    ``runs`` lists every run after the one it needs). Otherwise the runs are independent (each has its own
    seed, folder and data order), so running them in parallel processes changes no figure, only the wall
    time: the students alone train beside the teacher. A failed run stops the benchmark with its error. The
    workers call edgeseg's ``fit``/``distill`` directly (this script need not be importable there) and log
    to stdout.
    """
    needs = needs or {}
    if args.jobs == 1:
        return {name: train_or_resume(args, *run, log) for name, run in runs.items()}
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:

        def submit(name: str):
            train, recipe, run_dir = runs[name]
            return pool.submit(train, recipe, run_dir, **train_options(args, run_dir), log=print)

        futures = {submit(name): name for name in runs if name not in needs}
        while futures:
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()
                name = futures.pop(future)
                futures.update({submit(other): other for other, need in needs.items() if need == name})
    seconds = time.perf_counter() - t0  # the whole pool's wall time: the runs overlap
    return {name: run_info(args, recipe, run_dir, seconds) for name, (_, recipe, run_dir) in runs.items()}


def teacher_sets(args: argparse.Namespace) -> list[str]:
    """The overrides of the teacher's recipe when this script trains the teacher."""
    sets = list(args.teacher_set)
    if args.data:
        sets.append(f"data.root={args.data}")
    if args.teacher_epochs:
        sets.append(f"train.epochs={args.teacher_epochs}")
    return sets


def teacher_run(args: argparse.Namespace, recipe_path: str, work: Path) -> tuple[Any, Any, Path]:
    """The teacher's ``(train, recipe, run_dir)`` when this script trains it."""
    from edgeseg.config import load_recipe
    from edgeseg.train import fit

    return fit, load_recipe(recipe_path, teacher_sets(args)), work / "teacher"


def training_device(name: str) -> str:
    """What ``train.device: name`` trains on here, in words (the GPU's name for CUDA)."""
    import torch

    from edgeseg.train.distributed import resolve_device

    device = resolve_device(name)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def data_scale(recipe: Any) -> str:
    """The data settings that size the runs, in words."""
    d = recipe.data
    if d.root == "synthetic":
        return (
            f"synthetic: {d.synthetic_train} training and {d.synthetic_val} validation images of "
            f"{d.synthetic_size}×{d.synthetic_size} px, crop {d.crop_size}, batch {d.batch_size}"
        )
    return f"{d.root}: crop {d.crop_size}, batch {d.batch_size}"


def onnx_latency(checkpoints: dict[str, Path], size: int, runs: int) -> dict[str, dict[str, float]]:
    """p50/p90 latency (ms, batch 1, size×size) of each checkpoint exported to ONNX, timed in one run."""
    from edgeseg.bench import bench_models

    with tempfile.TemporaryDirectory() as folder:
        named = []
        for name, path in checkpoints.items():  # bench_models names each model after its file
            named.append(Path(folder) / f"{name}.pt")
            shutil.copyfile(path, named[-1])
        results, _ = bench_models(named, sizes=[(size, size)], with_onnx=True, runs=runs, warmup=5)
    return {
        r.config.model: {"p50_ms": r.p50_ms, "p90_ms": r.p90_ms}
        for r in results
        if r.config.engine == "onnxruntime"
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from edgeseg.checkpoint import load_checkpoint, model_from_checkpoint
    from edgeseg.distill.run import alone_epochs, distill, load_distill_recipe, teacher_miou
    from edgeseg.models import complexity
    from edgeseg.train import fit

    load_start = os.getloadavg()
    work = Path(args.work_dir)
    out = Path(args.out)
    if not (args.force or args.resume):
        for suffix in (".md", ".json"):
            check_writable(out.with_suffix(suffix), force=False)
    log = print
    sets = list(args.sets)
    if args.data:
        sets.append(f"data.root={args.data}")
    if args.epochs:
        sets.append(f"train.epochs={args.epochs}")
    base = load_distill_recipe(args.recipe, sets + ["distill.teacher=unused"])
    started = time.perf_counter()
    todo: dict[str, tuple[Any, Any, Path]] = {}
    if args.teacher:
        teacher_path = Path(args.teacher)
        teacher_command = args.teacher_command or "not given (pass --teacher-command)"
    else:
        teacher_recipe = base.section("distill").teacher_recipe
        if not teacher_recipe:
            raise EdgesegError(f"{args.recipe} names no distill.teacher_recipe; pass --teacher CKPT")
        todo["teacher"] = teacher_run(args, teacher_recipe, work)
        teacher_command = f"trained by this script: {teacher_recipe}, overrides {teacher_sets(args)}"
        teacher_path = todo["teacher"][2] / "best.pt"
    sets.append(f"distill.teacher={teacher_path}")

    def seed_recipe(seed: int, *more: str) -> Any:
        """The distillation recipe at ``seed`` with the student overrides (and ``more``)."""
        return load_distill_recipe(args.recipe, [*sets, f"train.seed={seed}", *more])

    def alone_run(recipe: Any, run_dir: Path) -> tuple[Any, Any, Path]:
        """The student alone: ``recipe`` without its ``distill:`` section, for as many optimizer steps as the
        distilled run (more epochs when the teacher labels unlabelled images)."""
        train = dataclasses.replace(recipe.train, epochs=alone_epochs(recipe))
        return fit, dataclasses.replace(recipe, sections={}, train=train), run_dir

    for seed in range(args.seeds):
        recipe = seed_recipe(seed)
        todo[f"alone_s{seed}"] = alone_run(recipe, work / f"alone_s{seed}")
        todo[f"distill_s{seed}"] = (distill, recipe, work / f"distill_s{seed}")
    for seed in range(args.seeds, args.alone_seeds):
        todo[f"alone_s{seed}"] = alone_run(seed_recipe(seed), work / f"alone_s{seed}")
    long_seeds = range(args.long_alone_seeds) if args.long_alone > 1 else range(0)
    for seed in long_seeds:
        long_recipe = seed_recipe(seed, f"train.epochs={recipe.train.epochs * args.long_alone}")
        todo[f"alone_long_s{seed}"] = alone_run(long_recipe, long_alone_dir(work, args.long_alone, seed))
    prior, reused = None, {}
    if args.reuse:
        same = {
            "recipe": args.recipe,
            "student_overrides": list(args.sets),
            "teacher_command": teacher_command,
            "data_scale": data_scale(recipe),
            "epochs": recipe.train.epochs,
            "alone_epochs": alone_epochs(recipe),
            "distill": dataclasses.asdict(recipe.section("distill")),
        }
        if not args.teacher:  # a teacher trained here lies in --work-dir: its recipe and overrides name it
            del same["distill"]["teacher"]
        prior = load_reuse(args.reuse, same)
        recorded = recorded_runs(prior, args.reuse, args.long_alone)
        # a run with a folder here trains or is read back from it; one without takes the file's record, its
        # plateau judged again under this call's --plateau-tolerance
        for name, (_, run_recipe, run_dir) in todo.items():
            if name in recorded and not run_dir.exists():
                again = plateau(recorded[name]["curve"], run_recipe.train.epochs, args.plateau_tolerance)
                reused[name] = {**recorded[name], "plateau": again}
        if args.extend_unplateaued:
            # a seed at its plateau on the file's shorter schedule keeps that run, unless it trained here
            kept = plateaued_long_runs(prior, args.reuse, args.long_alone, args.plateau_tolerance)
            reused.update({n: run for n, run in kept.items() if n in todo and not todo[n][2].exists()})
        log(f"runs taken from {args.reuse}: {', '.join(reused) or 'none'}")
    # the distilled students wait for a teacher trained here; the students alone train beside it
    to_train = {name: run for name, run in todo.items() if name not in reused}
    needs = {name: "teacher" for name in to_train if name.startswith("distill_") and "teacher" in to_train}
    log(f"runs: {', '.join(to_train) or 'none to train'} ({args.jobs} at a time)")
    done = {**run_all(args, to_train, log, needs), **reused}

    alone, distilled, teacher_scores, runs = [], [], [], {}
    for seed in range(args.seeds):
        run_alone, run_kd = done[f"alone_s{seed}"], done[f"distill_s{seed}"]
        alone.append(run_alone["final_miou"])
        distilled.append(run_kd["final_miou"])
        teacher_scores.append(
            run_kd["teacher_miou"]
            if f"distill_s{seed}" in reused
            else teacher_miou(work / f"distill_s{seed}")
        )
        runs[seed] = {
            "alone": alone[-1],
            "distilled": distilled[-1],
            "alone_seconds": run_alone["train_seconds"],
            "distilled_seconds": run_kd["train_seconds"],
            "alone_run": run_alone,
            "distilled_run": run_kd,
        }
        log(
            f"seed {seed}: alone {alone[-1]:.4f}, distilled {distilled[-1]:.4f}, "
            f"teacher {teacher_scores[-1]:.4f}"
        )

    alone_extra = {seed: done[f"alone_s{seed}"] for seed in range(args.seeds, args.alone_seeds)}
    every_alone = alone + [v["final_miou"] for v in alone_extra.values()]

    a_mean, a_std = mean_std(alone)
    d_mean, d_std = mean_std(distilled)
    long_alone = None
    if long_seeds:
        long_epochs = todo["alone_long_s0"][1].train.epochs
        long_runs = {
            seed: {"factor": args.long_alone, "epochs": long_epochs, **done[f"alone_long_s{seed}"]}
            for seed in long_seeds
        }
        long_values = [run["final_miou"] for run in long_runs.values()]
        l_mean, l_std = mean_std(long_values)
        long_gap = teacher_scores[0] - l_mean
        long_alone = {
            "factor": args.long_alone,
            "epochs": long_epochs,
            "runs": long_runs,
            "final_miou": {"mean": l_mean, "std": l_std, "values": long_values},
            # each seed against itself at the schedule (paired or --alone-seeds)
            "lift_over_schedule": [
                v - every_alone[seed] for seed, v in zip(long_seeds, long_values, strict=True)
            ],
            "at_plateau": all(run["plateau"]["plateaued"] for run in long_runs.values()),
            "distilled_minus_long": d_mean - l_mean,
            "gap_to_teacher": long_gap,
            "gap_closed": gap_closed(d_mean, l_mean, teacher_scores[0]),
        }
        if args.extend_unplateaued:
            long_alone.update(
                over_shorter_schedules(prior["long_alone"], long_runs, args, teacher_scores[0], d_mean)
            )

    student_path = work / "distill_s0" / "best.pt"
    size = recipe.data.crop_size
    if prior is not None and not (teacher_path.is_file() and student_path.is_file()):
        # the checkpoints stayed on the machine that trained them: their costs as that run measured them
        costs = {key: prior[key] for key in ("teacher_model", "params", "gflops", "onnx_latency_ms")}
        costs["costs_measured"] = prior.get("costs_measured") or measured_where(prior, args.reuse)
    else:
        teacher_ckpt = load_checkpoint(teacher_path)
        t_params, t_gflops = complexity(model_from_checkpoint(teacher_ckpt), (size, size))
        s_params, s_gflops = complexity(model_from_checkpoint(student_path), (size, size))
        latency = onnx_latency({"teacher": teacher_path, "student": student_path}, size, args.bench_runs)
        costs = {
            "teacher_model": teacher_ckpt["model"],
            "params": {"teacher": t_params, "student": s_params, "ratio": s_params / t_params},
            "gflops": {"teacher": t_gflops, "student": s_gflops, "ratio": s_gflops / t_gflops, "size": size},
            "onnx_latency_ms": {
                **latency,
                "p50_ratio": latency["student"]["p50_ms"] / latency["teacher"]["p50_ms"],
            },
            "costs_measured": None,
        }

    t_miou = teacher_scores[0]
    e_mean, e_std = mean_std(every_alone)
    return {
        "recipe": args.recipe,
        "teacher_checkpoint": str(teacher_path),
        "teacher_model": costs["teacher_model"],
        "student_model": {"name": recipe.model.name, "kwargs": recipe.model.kwargs},
        "distill": dataclasses.asdict(recipe.section("distill")),
        "data": recipe.data.root,
        "data_scale": data_scale(recipe),
        "student_overrides": list(args.sets),
        "teacher_command": teacher_command,
        "teacher_seconds": done["teacher"]["train_seconds"] if "teacher" in done else None,
        "teacher_run": done.get("teacher"),
        "epochs": recipe.train.epochs,
        "alone_epochs": alone_epochs(recipe),
        "seeds": args.seeds,
        "teacher_miou": t_miou,
        "alone_miou": {"mean": a_mean, "std": a_std, "values": alone},
        "distilled_miou": {"mean": d_mean, "std": d_std, "values": distilled},
        "gain": d_mean - a_mean,
        "gap_closed": gap_closed(d_mean, a_mean, t_miou),
        "beats_seed_spread": d_mean - a_mean > max(a_std, d_std),
        "beats_3x_seed_std": d_mean - a_mean > 3 * max(a_std, d_std),
        "plateau_tolerance": args.plateau_tolerance,
        "alone_at_plateau": all(v["alone_run"]["plateau"]["plateaued"] for v in runs.values()),
        "per_seed": runs,
        "alone_only_seeds": alone_extra,
        "alone_miou_every_seed": {"mean": e_mean, "std": e_std, "values": every_alone},
        "long_alone": long_alone,
        "params": costs["params"],
        "gflops": costs["gflops"],
        "onnx_latency_ms": costs["onnx_latency_ms"],
        "costs_measured": costs["costs_measured"],
        "reused": {name: reused[name]["measured"] for name in sorted(reused)},
        "seconds": time.perf_counter() - started,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "cpu": {"torch_threads": torch.get_num_threads(), "os_cpus": os.cpu_count()},
        "machine": machine_info(torch.get_num_threads()).to_dict(),
        "training_device": training_device(recipe.train.device),
        "command": "python " + shlex.join(sys.argv),
    }


def plateau_words(p: dict[str, Any]) -> str:
    if p["gain"] is None:
        return "n/a (too few evaluations)"
    return f"{100 * p['gain']:+.1f} points after epoch {p['last_third_from_epoch']}" + (
        "" if p["plateaued"] else " (not at plateau)"
    )


def curve_lines(r: dict[str, Any]) -> list[str]:
    """One line per run: its validation curve."""
    runs = [("teacher", r["teacher_run"])] if r.get("teacher_run") else []
    for seed, v in r["per_seed"].items():
        runs += [(f"alone, seed {seed}", v["alone_run"]), (f"distilled, seed {seed}", v["distilled_run"])]
    for seed, run in r.get("alone_only_seeds", {}).items():
        runs.append((f"alone, seed {seed} (alone only)", run))
    if r.get("long_alone"):
        la = r["long_alone"]
        runs += [
            (f"alone, seed {seed}, {run.get('epochs', la['epochs'])} epochs", run)
            for seed, run in la["runs"].items()
        ]
    return [f"- {name}: " + ", ".join(f"{e}: {m:.3f}" for e, m in run["curve"]) for name, run in runs]


def long_alone_lines(r: dict[str, Any]) -> list[str]:
    """The longer schedule's check of the student alone, if it was run: a table per seed and the gap closed
    against it."""
    la = r.get("long_alone")
    if not la:
        return []
    m = la["final_miou"]
    closed = percent_words(la["gap_closed"])
    factors = sorted({run.get("factor", la["factor"]) for run in la["runs"].values()})
    schedule = (
        f"at {la['factor']}x the schedule ({la['epochs']} epochs)"
        if factors == [la["factor"]]
        else "at longer schedules (each seed at the shortest of "
        + ", ".join(f"{f}x" for f in factors)
        + " that reached its plateau, taken from the --reuse file where it did)"
    )
    return [
        f"Student alone {schedule}, against the same seed at {r.get('alone_epochs', r['epochs'])} epochs:",
        "",
        "| seed | epochs | alone mIoU, longer schedule | lift over the schedule | gain over the last third |",
        "|---|---|---|---|---|",
        *(
            f"| {seed} | {run.get('epochs', la['epochs'])} | {run['final_miou']:.4f} | {100 * lift:+.1f} | "
            f"{plateau_words(run['plateau'])} |"
            for (seed, run), lift in zip(la["runs"].items(), la["lift_over_schedule"], strict=True)
        ),
        "",
        f"Longer schedule, {len(m['values'])} seed(s): {m['mean']:.4f} ± {m['std']:.4f}, "
        f"{100 * la['gap_to_teacher']:.1f} points below the teacher, at its plateau in every seed: "
        f"{'yes' if la['at_plateau'] else 'NO'}; the distilled students ({r['epochs']} epochs) are "
        f"{100 * la['distilled_minus_long']:+.1f} points from it: gap closed against the longer schedule "
        f"{closed}.",
        "",
        *shorter_schedule_lines(la),
    ]


def shorter_schedule_lines(la: dict[str, Any]) -> list[str]:
    """``--extend-unplateaued``: each seed trained longer against its shorter schedule, and the gap closed
    against each seed's best over the schedules."""
    if "best_over_schedules" not in la:
        return []
    lines = []
    for seed, run in la["runs"].items():
        o = run.get("over_shorter_schedule")
        if o:
            lifted = "still lifted" if o["lifted"] else "no lift"
            lines.append(
                f"- seed {seed}: {run['final_miou']:.4f} at {run['epochs']} epochs against "
                f"{o['final_miou']:.4f} at {o['epochs']}: {100 * o['lift']:+.1f} points ({lifted})"
            )
    b = la["best_over_schedules"]
    closed = percent_words(b["gap_closed"])
    how = ", ".join(
        f"seed {seed}: {why or 'NOT at its plateau'}" for seed, why in la["plateau_by_seed"].items()
    )
    every = "yes" if la["at_plateau_flat_or_no_lift"] else "NO"
    if lines:
        lines = [
            "Against the shorter schedule of the --reuse file (a seed is at its plateau when flat over its "
            "last third or when the longer schedule no longer lifts it by more than the tolerance):",
            "",
            *lines,
            "",
        ]
    return [
        *lines,
        f"At its plateau, flat or no longer lifted, in every seed: {every} ({how}). Each seed's best final "
        f"mIoU over the schedules: {b['mean']:.4f} ± {b['std']:.4f}, {100 * b['gap_to_teacher']:.1f} points "
        f"below the teacher; the distilled students are {100 * b['distilled_minus_best']:+.1f} points from "
        f"it: gap closed {closed}.",
        "",
    ]


def alone_only_lines(r: dict[str, Any]) -> list[str]:
    """The seeds the student was trained alone only (``--alone-seeds``), if any."""
    extra = r.get("alone_only_seeds") or {}
    if not extra:
        return []
    every = r["alone_miou_every_seed"]
    return [
        "Student alone only (no distilled run at these seeds; gain and gap closed above use the paired "
        "seeds):",
        "",
        "| seed | alone mIoU | training (s) | gain over the last third |",
        "|---|---|---|---|",
        *(
            f"| {seed} | {run['final_miou']:.4f} | {run['train_seconds']:.0f} | "
            f"{plateau_words(run['plateau'])} |"
            for seed, run in extra.items()
        ),
        "",
        f"Student alone over all {len(every['values'])} seeds: {every['mean']:.4f} ± {every['std']:.4f}.",
        "",
    ]


def reuse_lines(r: dict[str, Any]) -> list[str]:
    """The runs (and model costs) taken from earlier result files (``--reuse``), grouped by origin."""
    groups: dict[str, list[str]] = {}
    for name, where in (r.get("reused") or {}).items():
        groups.setdefault(json.dumps(where, sort_keys=True), []).append(f"`{name}`")
    if r.get("costs_measured"):
        groups.setdefault(json.dumps(r["costs_measured"], sort_keys=True), []).append(
            "the model costs (parameters, FLOPs, ONNX latency)"
        )
    if not groups:
        return []
    lines = ["Taken from earlier result files (`--reuse`; these runs' folders were not on this machine):", ""]
    for key, names in groups.items():
        where = json.loads(key)
        machine = where["machine"] or "an unrecorded machine"
        lines.append(
            f"- {', '.join(names)}: from `{where['file']}`, measured on {machine} by `{where['command']}`"
        )
    return [*lines, ""]


def spread_words(r: dict[str, Any]) -> str:
    """How the gain compares with the seed-to-seed spread, in words."""
    if r["seeds"] < 2:
        return "one seed: no seed-to-seed spread to compare it with"
    return f"{'more' if r['beats_seed_spread'] else 'not more'} than the seed-to-seed spread"


def schedule_words(r: dict[str, Any]) -> str:
    """ "150 epochs", or both counts when the student alone needs more epochs for the same steps."""
    alone = r.get("alone_epochs", r["epochs"])
    if alone == r["epochs"]:
        return f"{r['epochs']} epochs"
    return (
        f"{r['epochs']} epochs distilled (labelled and teacher-labelled images), {alone} epochs alone "
        "(the same optimizer steps)"
    )


def markdown(r: dict[str, Any]) -> str:
    """The results as a short markdown report."""
    gap = (
        "n/a (the student alone is not below the teacher)"
        if r["gap_closed"] is None
        else (f"{100 * r['gap_closed']:.0f} %")
    )
    lat = r["onnx_latency_ms"]
    student_cost = (
        f"{r['params']['student'] / 1e6:.2f} M | {r['gflops']['student']:.3f} | "
        f"{lat['student']['p50_ms']:.2f} |"
    )
    lines = [
        "# Distillation benchmark",
        "",
        f"Recipe `{r['recipe']}`: {r['teacher_model']['name']} → {r['student_model']['name']} on "
        f"`{r['data']}`, {schedule_words(r)}, {r['seeds']} seeds (mIoU of the final epoch, mean ± std).",
        "",
        "| model | mIoU | params | GFLOPs | ONNX p50 (ms) |",
        "|---|---|---|---|---|",
        f"| teacher | {r['teacher_miou']:.4f} | {r['params']['teacher'] / 1e6:.2f} M | "
        f"{r['gflops']['teacher']:.3f} | {lat['teacher']['p50_ms']:.2f} |",
        f"| student alone | {r['alone_miou']['mean']:.4f} ± {r['alone_miou']['std']:.4f} | " + student_cost,
        f"| distilled student | {r['distilled_miou']['mean']:.4f} ± {r['distilled_miou']['std']:.4f} | "
        + student_cost,
        "",
        f"- gain from distillation: {r['gain']:+.4f} mIoU ({spread_words(r)})",
        f"- teacher–student gap closed: {gap}",
        f"- student / teacher: parameters {r['params']['ratio']:.3f}, FLOPs {r['gflops']['ratio']:.3f} "
        f"(at {r['gflops']['size']}×{r['gflops']['size']}), ONNX Runtime p50 latency {lat['p50_ratio']:.3f}",
        f"- distill settings: weights {r['distill']['weights']}, kd_tau {r['distill']['kd_tau']}, "
        f"cwd_tau {r['distill']['cwd_tau']}, relation_tau {r['distill'].get('relation_tau')}, "
        f"feature pairs {r['distill']['feature_pairs']}, "
        f"student init {r['distill'].get('student_init', 'scratch')}",
        f"- data: {r['data_scale']}; student overrides {r['student_overrides']}",
        "",
        "| seed | alone mIoU | distilled mIoU | alone training (s) | distilled training (s) | "
        "alone: gain over the last third |",
        "|---|---|---|---|---|---|",
        *(
            f"| {seed} | {v['alone']:.4f} | {v['distilled']:.4f} | {v['alone_seconds']:.0f} | "
            f"{v['distilled_seconds']:.0f} | {plateau_words(v['alone_run']['plateau'])} |"
            for seed, v in r["per_seed"].items()
        ),
        "",
        f"Student alone at its plateau in every seed: {'yes' if r['alone_at_plateau'] else 'NO'} (a gain of "
        f"at most {100 * r['plateau_tolerance']:.1f} mIoU points from the best of the first two thirds of "
        "the schedule to the best of the last).",
        "",
        *alone_only_lines(r),
        *long_alone_lines(r),
        *reuse_lines(r),
        "Validation curves (epoch: mIoU):",
        "",
        *curve_lines(r),
        "",
        f"Teacher: `{r['teacher_checkpoint']}`, {r['teacher_command']}.",
        "",
        f"Command: `{r['command']}` ({r['seconds'] / 60:.1f} min wall, {r['cpu']['torch_threads']} torch "
        f"thread(s), {r['cpu']['os_cpus']} CPUs, load average {r['load_average']['start'][0]:.1f} at the "
        f"start and {r['load_average']['end'][0]:.1f} at the end).",
        "",
        f"Machine: {r['machine']['description']}." if "machine" in r else "Machine: not recorded.",
        f"Trained on: {r.get('training_device', 'not recorded')}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except EdgesegError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    out = Path(args.out)
    write_text_atomic(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    write_text_atomic(out.with_suffix(".md"), markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
