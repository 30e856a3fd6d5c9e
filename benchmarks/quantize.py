"""Benchmark: what INT8 buys (latency) and costs (mIoU) for the compact student and the teacher.

For each model (checkpoints given with ``--student`` (repeatable) and ``--teacher``, or else the
``--student-arch`` models and the ``--teacher-arch`` model trained here on the synthetic data with a tiny
budget), this exports the FP32 ONNX model (``edgeseg.export``), quantizes it with
``edgeseg.export.quantize_int8`` behind its accuracy gate (calibration on the synthetic train split, mIoU on
the val split), then times FP32 and INT8 in the same run with ``edgeseg.bench`` (round-robin interleaved, so
both see the same load) at ``--size``, batch 1, ``--threads`` threads. Writes ``<out>.md`` and ``<out>.json``
(default ``benchmarks/results/quantize``) with p50 latencies, the speed-up (ratio of medians), mIoU of both,
the drop, and the nodes the gate kept in float.

    python benchmarks/quantize.py --student runs/student/best.pt --teacher runs/teacher/best.pt
    python benchmarks/quantize.py --epochs 1 --train-images 32 --runs 5 --size 256 --out /tmp/q   # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegError, GateFailed
from edgeseg.fileio import check_writable, write_text_atomic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--student", type=Path, action="append", help="student checkpoint (repeatable)")
    p.add_argument("--teacher", type=Path, help="teacher checkpoint (default: train --teacher-arch here)")
    p.add_argument(
        "--student-arch",
        action="append",
        help="student trained without --student (default: lraspp_mobilenetv2)",
    )
    p.add_argument("--teacher-arch", default="deeplabv3plus", help="model trained without --teacher")
    p.add_argument("--skip-teacher", action="store_true", help="benchmark the student only")
    p.add_argument("--epochs", type=int, default=2, help="epochs for models trained here")
    p.add_argument("--train-images", type=int, default=400, help="synthetic images to train on")
    p.add_argument("--calib", default="synthetic", help="calibration/validation data (folder or 'synthetic')")
    p.add_argument("--calib-size", type=int, default=64, help="calibration images")
    p.add_argument("--val-size", type=int, default=200, help="validation images for the mIoU gate")
    p.add_argument("--max-drop", type=float, default=1.0, help="largest mIoU loss allowed, in points")
    p.add_argument("--method", default="minmax", help="calibration method: minmax, entropy or percentile")
    p.add_argument("--size", type=int, default=512, help="square input side for the latency runs")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for the latency runs")
    p.add_argument("--runs", type=int, default=30, help="timed runs of each model (interleaved)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs of each model first")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/quantize"), help="output stem")
    p.add_argument("--force", action="store_true", help="overwrite existing results")
    return p.parse_args(argv)


def train_tiny(arch: str, args: argparse.Namespace, folder: Path) -> Path:
    """Train ``arch`` on the synthetic data for ``--epochs`` and return its best checkpoint."""
    from edgeseg.config import ModelConfig, Recipe, TrainConfig
    from edgeseg.data import DataConfig
    from edgeseg.train import fit

    recipe = Recipe(
        model=ModelConfig(name=arch),
        data=DataConfig(synthetic_train=args.train_images, synthetic_val=min(args.val_size, 100)),
        train=TrainConfig(epochs=args.epochs, device="cpu"),
    )
    run = folder / f"train_{arch}"
    fit(recipe, run, progress=False, log=lambda line: print(f"  [{arch}] {line}", flush=True))
    return run / "best.pt"


def quantize_and_time(role: str, checkpoint: Path, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Export, quantize behind the gate, and time FP32 against INT8 in one interleaved run."""
    from edgeseg.bench.api import bench_models
    from edgeseg.export import export_checkpoint
    from edgeseg.export.quantize import quantize_int8

    stem = role.replace(" ", "_")
    fp32 = folder / f"{stem}.onnx"
    int8 = folder / f"{stem}.int8.onnx"
    export_checkpoint(checkpoint, fp32, validate=False, force=True)
    row: dict[str, Any] = {"role": role, "checkpoint": str(checkpoint)}
    try:
        report = quantize_int8(
            fp32, int8, calib=args.calib, calib_size=args.calib_size, val_size=args.val_size,
            max_drop=args.max_drop, method=args.method, force=True,
            progress=lambda line: print(f"  [{role}] {line}", flush=True),
        )  # fmt: skip
    except GateFailed as err:
        row["gate"] = f"failed: {err}"
        return row
    row.update(
        gate="passed", model=report_model(fp32), miou_fp32=report.miou_fp32, miou_int8=report.miou_int8,
        drop=report.drop, float_nodes=report.float_nodes, reduce_range=report.reduce_range,
        calib_images=report.calib_images, val_images=report.val_images,
    )  # fmt: skip
    print(f"  [{role}] timing FP32 and INT8 at {args.size}x{args.size}, {args.threads} threads", flush=True)
    results, _ = bench_models([fp32, int8], sizes=[(args.size, args.size)], threads=[args.threads],
                              warmup=args.warmup, runs=args.runs)  # fmt: skip
    by_precision = {r.config.precision: r for r in results}
    row["fp32_p50_ms"] = by_precision["fp32"].p50_ms
    row["int8_p50_ms"] = by_precision["int8"].p50_ms
    row["speedup"] = row["fp32_p50_ms"] / row["int8_p50_ms"]
    row["bench_rows"] = [r.to_row() for r in results]
    return row


def report_model(path: Path) -> str:
    from edgeseg.export.metadata import read_metadata

    return read_metadata(path).model_name


def markdown(rows: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    lines = [
        "# INT8 vs FP32 (ONNX Runtime, CPU)",
        "",
        f"{settings['size']}x{settings['size']}, batch 1, {settings['threads']} threads, {settings['runs']} "
        f"interleaved runs each; mIoU on {settings['calib']} val ({settings['val_size']} images at most); "
        f"CPU: {settings['cpu']}; ONNX Runtime {settings['onnxruntime']}.",
        "",
        "| model | role | FP32 p50 ms | INT8 p50 ms | speed-up | mIoU FP32 | mIoU INT8 | drop (points) "
        "| kept float |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if row.get("gate") != "passed":
            lines.append(f"| {row.get('model', '?')} | {row['role']} | | | | | | | {row['gate']} |")
            continue
        kept = ", ".join(row["float_nodes"]) or "none"
        lines.append(
            f"| {row['model']} | {row['role']} | {row['fp32_p50_ms']:.1f} | {row['int8_p50_ms']:.1f} | "
            f"{row['speedup']:.2f}x | {row['miou_fp32']:.2f} | {row['miou_int8']:.2f} | {row['drop']:.2f} "
            f"| {kept} |"
        )
    return "\n".join(lines) + "\n"


def cpu_name() -> str:
    from edgeseg.export.quantize import cpu_has_vnni

    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = text.splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        name = "unknown"
    return f"{name} ({'VNNI' if cpu_has_vnni() else 'no VNNI'})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    md_path, json_path = args.out.with_suffix(".md"), args.out.with_suffix(".json")
    for path in (md_path, json_path):
        check_writable(path, args.force)
    import onnxruntime

    settings = {
        "size": args.size, "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
        "calib": args.calib, "calib_size": args.calib_size, "val_size": args.val_size,
        "max_drop": args.max_drop, "method": args.method, "cpu": cpu_name(),
        "onnxruntime": onnxruntime.__version__,
    }  # fmt: skip
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeseg-qbench-") as tmp:
        folder = Path(tmp)
        if args.student:
            roles = [(f"student {i + 1}" if len(args.student) > 1 else "student", ckpt, None)
                     for i, ckpt in enumerate(args.student)]  # fmt: skip
        else:
            archs = args.student_arch or ["lraspp_mobilenetv2"]
            roles = [("student" if len(archs) == 1 else f"student {arch}", None, arch) for arch in archs]
        if not args.skip_teacher:
            roles.append(("teacher", args.teacher, args.teacher_arch))
        for role, checkpoint, arch in roles:
            if checkpoint is None:
                print(f"[{role}] training {arch} for {args.epochs} epochs on synthetic data", flush=True)
                checkpoint = train_tiny(arch, args, folder)
            rows.append(quantize_and_time(role, checkpoint, args, folder))
    settings["seconds"] = round(time.perf_counter() - start, 1)
    write_text_atomic(json_path, json.dumps({"settings": settings, "rows": rows}, indent=2))
    write_text_atomic(md_path, markdown(rows, settings))
    print(markdown(rows, settings))
    return 0 if all(row.get("gate") == "passed" for row in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EdgesegError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
