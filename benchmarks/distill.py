"""Benchmark: does distillation beat the student trained alone, and what does the student cost?

Trains (or takes ``--teacher CKPT``) the teacher of a distillation recipe, then, for each seed, the student
alone (the recipe without its ``distill`` section, i.e. the plain label loss) and the distilled student, under
the same schedule, seed, initial weights and data order (unless the recipe starts the student from the
teacher's weights, ``distill.student_init: teacher``). Reports the teacher's mIoU, the student-alone and
distilled mIoU (mean ± sample std over seeds, final epoch — no selection on the validation split), the share
of the teacher–student gap closed, and the parameter, FLOP and ONNX Runtime latency ratios of student to
teacher. Writes ``<out>.md`` and ``<out>.json`` (default ``benchmarks/results/distill``).

    python benchmarks/distill.py                                  # DeepLabV3+-R50 → DeepLabV3+-MobileNetV2
    python benchmarks/distill.py --recipe recipes/distill_unet.yaml
    python benchmarks/distill.py --recipe recipes/distill_lraspp_dsnet.yaml   # wide LR-ASPP → LR-ASPP
    python benchmarks/distill.py --recipe recipes/distill_unet_lraspp.yaml --teacher runs/unet/best.pt \
        --teacher-command "edgeseg train recipes/unet.yaml ..."   # a teacher trained beforehand
    python benchmarks/distill.py --epochs 1 --seeds 1 --set data.synthetic_train=64   # smoke run
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
    p.add_argument("--progress", action="store_true", help="show progress bars")
    return p.parse_args(argv)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def final_miou(result: Any) -> float:
    """mIoU of the last evaluated epoch of a ``FitResult``."""
    evaluated = [r["miou"] for r in result.history if "miou" in r]
    return float(evaluated[-1])


def teacher_sets(args: argparse.Namespace) -> list[str]:
    """The overrides of the teacher's recipe when this script trains the teacher."""
    sets = list(args.teacher_set)
    if args.data:
        sets.append(f"data.root={args.data}")
    if args.teacher_epochs:
        sets.append(f"train.epochs={args.teacher_epochs}")
    return sets


def train_teacher(args: argparse.Namespace, recipe_path: str, work: Path, log) -> Path:
    from edgeseg.config import load_recipe
    from edgeseg.train import fit

    recipe = load_recipe(recipe_path, teacher_sets(args))
    log(f"training the teacher ({recipe_path}, {recipe.train.epochs} epochs)")
    return fit(recipe, work / "teacher", force=True, progress=args.progress, log=log).best_path


def data_scale(recipe: Any) -> str:
    """The data settings that size the runs, in words."""
    d = recipe.data
    if d.root == "synthetic":
        return (f"synthetic: {d.synthetic_train} training and {d.synthetic_val} validation images of "
                f"{d.synthetic_size}×{d.synthetic_size} px, crop {d.crop_size}, batch {d.batch_size}")
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
    from edgeseg.distill.run import distill, load_distill_recipe, teacher_miou
    from edgeseg.models import complexity
    from edgeseg.train import fit

    load_start = os.getloadavg()
    work = Path(args.work_dir)
    out = Path(args.out)
    if not args.force:
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
    if args.teacher:
        teacher_path = Path(args.teacher)
    else:
        teacher_recipe = base.section("distill").teacher_recipe
        if not teacher_recipe:
            raise EdgesegError(f"{args.recipe} names no distill.teacher_recipe; pass --teacher CKPT")
        teacher_path = train_teacher(args, teacher_recipe, work, log)
    sets.append(f"distill.teacher={teacher_path}")

    teacher_seconds = time.perf_counter() - started
    alone, distilled, teacher_scores, runs = [], [], [], {}
    for seed in range(args.seeds):
        recipe = load_distill_recipe(args.recipe, sets + [f"train.seed={seed}"])
        plain = dataclasses.replace(recipe, sections={})
        log(f"seed {seed}: student alone")
        t0 = time.perf_counter()
        res_alone = fit(plain, work / f"alone_s{seed}", force=True, progress=args.progress, log=log)
        t1 = time.perf_counter()
        log(f"seed {seed}: distilled")
        res_kd = distill(recipe, work / f"distill_s{seed}", force=True, progress=args.progress, log=log)
        t2 = time.perf_counter()
        alone.append(final_miou(res_alone))
        distilled.append(final_miou(res_kd))
        teacher_scores.append(teacher_miou(res_kd.run_dir))
        runs[seed] = {"alone": alone[-1], "distilled": distilled[-1], "alone_seconds": t1 - t0,
                      "distilled_seconds": t2 - t1}
        log(f"seed {seed}: alone {alone[-1]:.4f}, distilled {distilled[-1]:.4f}, "
            f"teacher {teacher_scores[-1]:.4f}")

    teacher_ckpt = load_checkpoint(teacher_path)
    if args.teacher:
        teacher_command = args.teacher_command or "not given (pass --teacher-command)"
    else:
        teacher_command = f"trained by this script: {teacher_recipe}, overrides {teacher_sets(args)}"
    student_path = work / "distill_s0" / "best.pt"
    size = recipe.data.crop_size
    t_params, t_gflops = complexity(model_from_checkpoint(teacher_ckpt), (size, size))
    s_params, s_gflops = complexity(model_from_checkpoint(student_path), (size, size))
    latency = onnx_latency({"teacher": teacher_path, "student": student_path}, size, args.bench_runs)

    t_miou = teacher_scores[0]
    a_mean, a_std = mean_std(alone)
    d_mean, d_std = mean_std(distilled)
    gap = t_miou - a_mean
    return {
        "recipe": args.recipe,
        "teacher_checkpoint": str(teacher_path),
        "teacher_model": teacher_ckpt["model"],
        "student_model": {"name": recipe.model.name, "kwargs": recipe.model.kwargs},
        "distill": dataclasses.asdict(recipe.section("distill")),
        "data": recipe.data.root,
        "data_scale": data_scale(recipe),
        "student_overrides": list(args.sets),
        "teacher_command": teacher_command,
        "teacher_seconds": teacher_seconds if not args.teacher else None,
        "epochs": recipe.train.epochs,
        "seeds": args.seeds,
        "teacher_miou": t_miou,
        "alone_miou": {"mean": a_mean, "std": a_std, "values": alone},
        "distilled_miou": {"mean": d_mean, "std": d_std, "values": distilled},
        "gain": d_mean - a_mean,
        "gap_closed": (d_mean - a_mean) / gap if gap > 0 else None,
        "beats_seed_spread": d_mean - a_mean > max(a_std, d_std),
        "per_seed": runs,
        "params": {"teacher": t_params, "student": s_params, "ratio": s_params / t_params},
        "gflops": {"teacher": t_gflops, "student": s_gflops, "ratio": s_gflops / t_gflops, "size": size},
        "onnx_latency_ms": {
            **latency, "p50_ratio": latency["student"]["p50_ms"] / latency["teacher"]["p50_ms"]
        },
        "seconds": time.perf_counter() - started,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "cpu": {"torch_threads": torch.get_num_threads(), "os_cpus": os.cpu_count()},
        "machine": machine_info(torch.get_num_threads()).to_dict(),
        "command": "python " + shlex.join(sys.argv),
    }


def markdown(r: dict[str, Any]) -> str:
    """The results as a short markdown report."""
    gap = "n/a (the student alone is not below the teacher)" if r["gap_closed"] is None else (
        f"{100 * r['gap_closed']:.0f} %")
    lat = r["onnx_latency_ms"]
    student_cost = (f"{r['params']['student'] / 1e6:.2f} M | {r['gflops']['student']:.3f} | "
                    f"{lat['student']['p50_ms']:.2f} |")
    lines = [
        "# Distillation benchmark",
        "",
        f"Recipe `{r['recipe']}`: {r['teacher_model']['name']} → {r['student_model']['name']} on "
        f"`{r['data']}`, {r['epochs']} epochs, {r['seeds']} seeds (mIoU of the final epoch, mean ± std).",
        "",
        "| model | mIoU | params | GFLOPs | ONNX p50 (ms) |",
        "|---|---|---|---|---|",
        f"| teacher | {r['teacher_miou']:.4f} | {r['params']['teacher'] / 1e6:.2f} M | "
        f"{r['gflops']['teacher']:.3f} | {lat['teacher']['p50_ms']:.2f} |",
        f"| student alone | {r['alone_miou']['mean']:.4f} ± {r['alone_miou']['std']:.4f} | " + student_cost,
        f"| distilled student | {r['distilled_miou']['mean']:.4f} ± {r['distilled_miou']['std']:.4f} | "
        + student_cost,
        "",
        f"- gain from distillation: {r['gain']:+.4f} mIoU "
        f"({'more' if r['beats_seed_spread'] else 'not more'} than the seed-to-seed spread)",
        f"- teacher–student gap closed: {gap}",
        f"- student / teacher: parameters {r['params']['ratio']:.3f}, FLOPs {r['gflops']['ratio']:.3f} "
        f"(at {r['gflops']['size']}×{r['gflops']['size']}), ONNX Runtime p50 latency {lat['p50_ratio']:.3f}",
        f"- distill settings: weights {r['distill']['weights']}, kd_tau {r['distill']['kd_tau']}, "
        f"cwd_tau {r['distill']['cwd_tau']}, relation_tau {r['distill'].get('relation_tau')}, "
        f"feature pairs {r['distill']['feature_pairs']}, "
        f"student init {r['distill'].get('student_init', 'scratch')}",
        f"- data: {r['data_scale']}; student overrides {r['student_overrides']}",
        "",
        "| seed | alone mIoU | distilled mIoU | alone wall (s) | distilled wall (s) |",
        "|---|---|---|---|---|",
        *(f"| {seed} | {v['alone']:.4f} | {v['distilled']:.4f} | {v['alone_seconds']:.0f} | "
          f"{v['distilled_seconds']:.0f} |" for seed, v in r["per_seed"].items()),
        "",
        f"Teacher: `{r['teacher_checkpoint']}`, {r['teacher_command']}.",
        "",
        f"Command: `{r['command']}` ({r['seconds'] / 60:.1f} min wall, {r['cpu']['torch_threads']} torch "
        f"thread(s), {r['cpu']['os_cpus']} CPUs, load average {r['load_average']['start'][0]:.1f} at the "
        f"start and {r['load_average']['end'][0]:.1f} at the end).",
        "",
        f"Machine: {r['machine']['description']}." if "machine" in r else "Machine: not recorded.",
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
