"""Benchmark: does a pretrained backbone help a student trained on little segmentation data?

For each seed, trains the student of a segmentation recipe on a small training set three ways, with the same
schedule, seed and data order: from scratch; from a pretrained backbone (``model.pretrained``); and from the
pretrained backbone with its early stages frozen and the backbone's learning rate multiplied by 0.1
(``train.freeze``, ``train.lr_mult``). The pretrained backbone is ``--pretrained CKPT`` or is trained here
first with ``edgeseg pretrain``'s library function on ``--pretrain-recipe``. Reports the final mIoU (last
evaluated epoch — no selection on the validation split; mean ± sample std over seeds), whether pretrained
beats scratch by more than 3× the seed std, and the mIoU curve (mean over seeds per evaluated epoch). Writes
``<out>.md`` and ``<out>.json`` (default ``benchmarks/results/transfer``).

    python benchmarks/transfer.py                                   # DSNet: pretrain, then 3 × 3 runs
    python benchmarks/transfer.py --pretrained runs/pretrain_dsnet_synthetic/best.pt \\
        --pretrained-command "edgeseg pretrain recipes/pretrain_dsnet_synthetic.yaml"
    python benchmarks/transfer.py --seeds 1 --epochs 1 --train-images 16 --set data.synthetic_val=8 \\
        --pretrain-set train.epochs=1 --pretrain-set data.synthetic_train=70   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from edgeseg.bench.machine import machine_info
from edgeseg.errors import EdgesegError
from edgeseg.fileio import check_writable, write_text_atomic

VARIANTS = ("scratch", "pretrained", "pretrained_frozen")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="recipes/lraspp_dsnet.yaml", help="segmentation recipe of the student")
    p.add_argument("--pretrained", help="pretrain checkpoint (default: run --pretrain-recipe first)")
    p.add_argument("--pretrained-command", help="how the --pretrained checkpoint was made (for the results)")
    p.add_argument("--pretrain-recipe", default="recipes/pretrain_dsnet_synthetic.yaml")
    p.add_argument("--pretrain-set", action="append", default=[], help="override for the pretrain run")
    p.add_argument("--train-images", type=int, default=200, help="segmentation training images")
    p.add_argument("--epochs", type=int, default=24, help="segmentation epochs")
    p.add_argument("--eval-interval", type=int, default=4, help="epochs between evaluations (the curve)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (train.seed = 0, 1, ...)")
    p.add_argument("--freeze", default="backbone.stem,backbone.stages.0", help="frozen prefixes (a,b)")
    p.add_argument("--lr-mult", type=float, default=0.1, help="backbone lr multiplier (frozen runs)")
    p.add_argument("--set", dest="sets", action="append", default=[], help="override (segmentation runs)")
    p.add_argument("--work-dir", default="runs/bench_transfer", help="folder for the runs")
    p.add_argument("--out", default="benchmarks/results/transfer", help="results path without suffix")
    p.add_argument("--force", action="store_true", help="overwrite earlier results and runs")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    return p.parse_args(argv)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def curve(result: Any) -> list[tuple[int, float]]:
    """(epoch, mIoU) of every evaluated epoch of a ``FitResult``."""
    return [(int(r["epoch"]), float(r["miou"])) for r in result.history if "miou" in r]


def variant_sets(variant: str, pretrained: Path, freeze: list[str], lr_mult: float) -> list[str]:
    """The recipe overrides that make a variant."""
    if variant == "scratch":
        return []
    sets = [f"model.pretrained={pretrained}"]
    if variant == "pretrained_frozen":
        sets += [f"train.freeze=[{','.join(freeze)}]", f"train.lr_mult={{backbone: {lr_mult}}}"]
    return sets


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.config import load_recipe
    from edgeseg.pretrain import load_pretrain_recipe, pretrain
    from edgeseg.train import fit

    load_start = os.getloadavg()
    work, started = Path(args.work_dir), time.perf_counter()
    if args.pretrained:
        pretrained = Path(args.pretrained)
        pretrained_command = args.pretrained_command or "not given (pass --pretrained-command)"
        pretrain_seconds = None
    else:
        recipe = load_pretrain_recipe(args.pretrain_recipe, args.pretrain_set)
        result = pretrain(recipe, work / "pretrain", force=args.force, progress=args.progress)
        pretrained = result.best_path
        pretrained_command = f"trained by this script: {args.pretrain_recipe}, overrides {args.pretrain_set}"
        pretrain_seconds = time.perf_counter() - started
    pre = load_checkpoint(pretrained)
    freeze = [p for p in args.freeze.split(",") if p]
    base = [
        f"data.synthetic_train={args.train_images}",
        f"train.epochs={args.epochs}",
        f"train.eval_interval={args.eval_interval}",
        *args.sets,
    ]
    finals: dict[str, list[float]] = {v: [] for v in VARIANTS}
    curves: dict[str, list[list[tuple[int, float]]]] = {v: [] for v in VARIANTS}
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for seed in range(args.seeds):
        for variant in VARIANTS:
            sets = base + [f"train.seed={seed}"] + variant_sets(variant, pretrained, freeze, args.lr_mult)
            recipe = load_recipe(args.recipe, sets)
            print(f"seed {seed}: {variant}", flush=True)
            t0 = time.perf_counter()
            res = fit(recipe, work / f"{variant}_s{seed}", force=True, progress=args.progress)
            seconds[variant].append(time.perf_counter() - t0)
            curves[variant].append(curve(res))
            finals[variant].append(curves[variant][-1][-1][1])
            print(f"seed {seed}: {variant} final mIoU {finals[variant][-1]:.4f}", flush=True)
    summary = {v: dict(zip(("mean", "std"), mean_std(finals[v]), strict=True)) for v in VARIANTS}
    for v in VARIANTS:
        summary[v]["values"] = finals[v]
        summary[v]["seconds"] = seconds[v]
        epochs = [e for e, _ in curves[v][0]]
        means = [statistics.fmean(c[i][1] for c in curves[v]) for i in range(len(epochs))]
        summary[v]["curve"] = [list(pair) for pair in zip(epochs, means, strict=True)]
    std = max(summary["scratch"]["std"], summary["pretrained"]["std"])
    gain = summary["pretrained"]["mean"] - summary["scratch"]["mean"]
    return {
        "recipe": args.recipe,
        "student": recipe.model.name,
        "train_images": args.train_images,
        "val_images": recipe.data.synthetic_val if recipe.data.root == "synthetic" else None,
        "data": recipe.data.root,
        "size": recipe.data.crop_size,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "overrides": args.sets,
        "freeze": freeze,
        "lr_mult": args.lr_mult,
        "pretrained": str(pretrained),
        "pretrained_command": pretrained_command,
        "pretrained_top1": (pre.get("metrics") or {}).get("top1"),
        "pretrained_data": (pre.get("recipe") or {}).get("data", {}),
        "pretrain_seconds": pretrain_seconds,
        "results": summary,
        "gain": gain,
        "gain_over_3_std": gain > 3 * std,
        "seconds": time.perf_counter() - started,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "machine": machine_info(torch.get_num_threads()).to_dict(),
        "command": "python " + shlex.join(sys.argv),
    }


def markdown(r: dict[str, Any]) -> str:
    """The results as a short markdown report."""
    res = r["results"]
    names = {
        "scratch": "from scratch",
        "pretrained": "pretrained backbone",
        "pretrained_frozen": f"pretrained, {'+'.join(r['freeze'])} frozen, backbone lr ×{r['lr_mult']}",
    }
    epochs = [e for e, _ in res["scratch"]["curve"]]
    top1 = f"{r['pretrained_top1']:.4f}" if r["pretrained_top1"] is not None else "n/a"
    verdict = "more" if r["gain_over_3_std"] else "NOT more"
    lines = [
        "# Transfer-learning benchmark",
        "",
        f"Student `{r['student']}` (recipe `{r['recipe']}`) on `{r['data']}`: {r['train_images']} training "
        f"images, {r['val_images']} validation images, {r['size']}×{r['size']} px, {r['epochs']} epochs, "
        f"{r['seeds']} seeds. mIoU of the final epoch (mean ± sample std).",
        "",
        "| start | final mIoU | per seed | wall per run (s) |",
        "|---|---|---|---|",
        *(
            f"| {names[v]} | {res[v]['mean']:.4f} ± {res[v]['std']:.4f} | "
            f"{', '.join(f'{x:.4f}' for x in res[v]['values'])} | {statistics.fmean(res[v]['seconds']):.0f} |"
            for v in VARIANTS
        ),
        "",
        f"- pretrained − scratch: {r['gain']:+.4f} mIoU, {verdict} than 3× the larger seed std",
        f"- pretrained backbone: `{r['pretrained']}` (validation top-1 {top1}), {r['pretrained_command']}",
        "",
        "mIoU curve (mean over seeds):",
        "",
        "| epoch | " + " | ".join(names[v] for v in VARIANTS) + " |",
        "|---|" + "---|" * len(VARIANTS),
        *(
            f"| {e} | " + " | ".join(f"{res[v]['curve'][i][1]:.4f}" for v in VARIANTS) + " |"
            for i, e in enumerate(epochs)
        ),
        "",
        f"Machine: {r['machine']['description']}; load average "
        f"{r['load_average']['start'][0]:.1f} at the start and {r['load_average']['end'][0]:.1f} at the end "
        "(the machine was shared).",
        "",
        f"Command: `{r['command']}` ({r['seconds'] / 60:.1f} min wall).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    try:
        for suffix in (".md", ".json"):
            check_writable(out.with_suffix(suffix), force=args.force)
        result = run(args)
    except EdgesegError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    write_text_atomic(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    write_text_atomic(out.with_suffix(".md"), markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
