"""Benchmark: do FP32 and INT8 files give the same labels in OpenCV DNN and onnx's reference evaluator as in
ONNX Runtime, and what does the quantizer's placement cost in ONNX Runtime?

Quantizes ``--fp32`` with the current quantizer (``edgeseg.quantize.int8.quantize_int8``: Sigmoid gates kept
float, QDQ file at opset 19, see ``edgeseg/quantize/portable.py``), then runs the FP32 file, that INT8 file
and any ``--int8`` files (e.g. one made before those changes) in each runtime on the first ``--images``
validation images: mIoU, label agreement with ONNX Runtime (same file), and ONNX Runtime's p50 latency at
``--size`` (1 thread, round-robin). onnx's reference evaluator is slow, so it runs on ``--reference-images``
only. Prints a markdown table with the machine (``edgeseg.bench.machine``) and writes ``<out>.md``/``.json``.

    python benchmarks/runtimes.py --fp32 runs/quickstart/models/distilled.onnx \\
        --int8 runs/quickstart/models/distilled_int8.onnx --set data.synthetic_size=96
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bench.machine import machine_info
from edgeseg.errors import EdgesegError
from edgeseg.fileio import check_writable, write_text_atomic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fp32", type=Path, required=True, help="FP32 ONNX file (from edgeseg export)")
    p.add_argument("--int8", type=Path, action="append", default=[], help="more INT8 files to compare")
    p.add_argument("--data", default="synthetic", help="dataset folder or 'synthetic'")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="data.key=value (repeatable)")
    p.add_argument("--calib-size", type=int, default=64, help="calibration images for the INT8 made here")
    p.add_argument("--images", type=int, default=100, help="validation images for mIoU and agreement")
    p.add_argument("--reference-images", type=int, default=4, help="images run in onnx.reference")
    p.add_argument("--size", type=int, default=256, help="square input side for the latency runs")
    p.add_argument("--runs", type=int, default=50, help="timed runs per file (round-robin)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/runtimes"), help="output stem")
    p.add_argument("--force", action="store_true", help="overwrite the outputs")
    return p.parse_args(argv)


def labels_in(runtime: str, path: Path, inputs: list[np.ndarray]) -> list[np.ndarray] | str:
    """Argmax labels of ``path`` in ``runtime`` for each input, or why it cannot run the file."""
    from edgeseg.export.runtimes import RuntimeUnavailable, runtime_runner

    try:
        run = runtime_runner(runtime, path)[0]
        return [run(x).argmax(axis=1)[0] for x in inputs]
    except RuntimeUnavailable as err:
        return f"skipped: {err}"
    except Exception as err:  # the runtime's own error types: the finding is that it cannot run the file
        return "cannot run: " + (str(err).splitlines() or [type(err).__name__])[0][:160]


def miou(labels: list[np.ndarray], masks: list[np.ndarray], num_classes: int, ignore: int) -> float:
    from edgeseg.metrics import confusion_matrix, metrics_from_confusion

    cm = sum(confusion_matrix(p, m, num_classes, ignore) for p, m in zip(labels, masks, strict=True))
    return 100 * metrics_from_confusion(cm).miou


def measure(paths: dict[str, Path], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from edgeseg.bench import bench_models
    from edgeseg.export.from_checkpoint import load_samples
    from edgeseg.export.info import load_onnx
    from edgeseg.export.metadata import read_metadata
    from edgeseg.runtime.ops import normalized_batch

    meta = read_metadata(load_onnx(paths["FP32"]))
    samples = load_samples(args.data, args.images, num_classes=len(meta.classes), overrides=args.overrides)
    inputs = [normalized_batch(image, meta.mean, meta.std) for image, _ in samples]
    masks = [mask for _, mask in samples]
    n, ignore = len(meta.classes), meta.ignore_index
    timings, _ = bench_models(list(paths.values()), sizes=[(args.size, args.size)], threads=[1],
                              warmup=5, runs=args.runs, interleave=True)  # fmt: skip
    p50 = {r.config.model: r.p50_ms for r in timings}
    rows: dict[str, dict[str, Any]] = {}
    for key, path in paths.items():
        ort = labels_in("onnxruntime", path, inputs)
        assert not isinstance(ort, str), ort
        row: dict[str, Any] = {"file": str(path), "miou_onnxruntime": miou(ort, masks, n, ignore),
                               "p50_ms_onnxruntime": p50.get(path.stem)}  # fmt: skip
        for runtime, count in (("opencv", len(inputs)), ("onnx-reference", args.reference_images)):
            got = labels_in(runtime, path, inputs[:count])
            if isinstance(got, str):
                row[runtime] = got
                continue
            agree = np.mean([np.mean(a == b) for a, b in zip(got, ort[:count], strict=True)])
            whole = miou(got, masks[:count], n, ignore) if count == len(inputs) else None
            row[runtime] = {"agreement_vs_onnxruntime": 100 * float(agree), "images": count, "miou": whole}
        rows[key] = row
    return rows


def markdown(rows: dict[str, dict[str, Any]], settings: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, str):
            return value
        text = f"{value['agreement_vs_onnxruntime']:.3f} % ({value['images']} images)"
        return text + (f", mIoU {value['miou']:.2f}" if value.get("miou") is not None else "")

    lines = [
        "# The same file in ONNX Runtime, OpenCV DNN and onnx's reference evaluator",
        "",
        "| file | ONNX Runtime mIoU | ONNX Runtime p50 ms | OpenCV: labels as ONNX Runtime | "
        "onnx.reference: labels as ONNX Runtime |",
        "|---|---:|---:|---|---|",
    ]
    for key, row in rows.items():
        lines.append(
            f"| {key} (`{Path(row['file']).name}`) | {row['miou_onnxruntime']:.2f} | "
            f"{row['p50_ms_onnxruntime']:.2f} | {cell(row['opencv'])} | {cell(row['onnx-reference'])} |"
        )
    lines += [
        "",
        f"mIoU on {settings['images']} validation images of `{settings['data']}` "
        f"({', '.join(settings['overrides']) or 'default settings'}); latency at {settings['size']}x"
        f"{settings['size']}, batch 1, 1 thread, {settings['runs']} round-robin runs. "
        f"OpenCV {settings['opencv']}, onnx {settings['onnx']}.",
        "",
        f"Machine: {settings['machine']['description']}.",
        "",
        f"Command: `{settings['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    md_path, json_path = args.out.with_suffix(".md"), args.out.with_suffix(".json")
    for path in (md_path, json_path):
        check_writable(path, args.force)
    import onnx

    from edgeseg.config import data_settings
    from edgeseg.data import build_dataset
    from edgeseg.quantize.int8 import quantize_int8

    machine = machine_info(threads=1)
    print(f"machine: {machine.describe()}", flush=True)
    try:
        import cv2

        opencv = cv2.__version__
    except ImportError:
        opencv = "not installed"
    root = args.data if args.data == "synthetic" else Path(args.data)
    cfg = data_settings(args.overrides, root=str(root))
    with tempfile.TemporaryDirectory(prefix="edgeseg-runtimes-") as tmp:
        now = Path(tmp) / "int8_now.onnx"
        calib, val = build_dataset(root, "train", cfg), build_dataset(root, "val", cfg)
        say = lambda line: print(f"  {line}", flush=True)  # noqa: E731
        report = quantize_int8(args.fp32, now, calib=calib, calib_size=args.calib_size, val=val,
                               val_size=args.images, progress=say)  # fmt: skip
        print(f"INT8 now: mIoU {report.miou_fp32:.2f} -> {report.miou_int8:.2f}", flush=True)
        paths = {"FP32": args.fp32, **{f"INT8 given {i + 1}": p for i, p in enumerate(args.int8)},
                 "INT8 now": now}  # fmt: skip
        rows = measure(paths, args)
    given = argv if argv is not None else sys.argv[1:]
    settings = {
        "data": args.data, "overrides": args.overrides, "images": args.images, "size": args.size,
        "runs": args.runs, "opencv": opencv, "onnx": onnx.__version__, "machine": machine.to_dict(),
        "gate": report.to_dict(),
        "command": shlex.join(["python", "benchmarks/runtimes.py", *map(str, given)]),
    }  # fmt: skip
    document = {"settings": settings, "rows": rows}
    write_text_atomic(json_path, json.dumps(document, indent=2, default=str) + "\n")
    write_text_atomic(md_path, markdown(rows, settings))
    print(markdown(rows, settings))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EdgesegError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
