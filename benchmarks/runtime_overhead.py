"""Benchmark: what does ``Segmenter.predict`` cost on top of the bare ``session.run``?

On one 512×512 RGB image, with the same ONNX Runtime session in the same process, this times

* ``bare``: ``session.run`` on an input tensor prepared beforehand (normalized NCHW float32), giving logits;
* ``predict``: ``Segmenter.predict(image)``: uint8 image in, label map out (normalization, the same
  ``session.run``, argmax over classes, cropping).

The two are interleaved call by call (their order alternating) so that load from other processes hits both
alike, and the ratio of their medians is printed, with the runtime's own steps timed separately. The model is
an ONNX file (``--model``) or, by default, a zoo architecture exported with ``edgeseg.export.to_onnx``
(random weights: the cost does not depend on them).

    python benchmarks/runtime_overhead.py                          # lraspp_dsnet, 8 classes (synthetic)
    python benchmarks/runtime_overhead.py --arch deeplabv3plus_mobilenetv2 --classes 21
    python benchmarks/runtime_overhead.py --classes 21 --output argmax      # labels computed in the graph
    python benchmarks/runtime_overhead.py --model model.onnx --threads 2 --runs 100
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="ONNX file (default: export --arch with random weights)")
    p.add_argument("--arch", default="lraspp_dsnet", help="zoo model to export when --model is not given")
    p.add_argument("--classes", type=int, default=8, help="classes of the exported model (synthetic: 8)")
    p.add_argument(
        "--output",
        default="logits",
        choices=["logits", "argmax"],
        help="output of the exported model (argmax: the labels come out of the graph)",
    )
    p.add_argument("--size", type=int, default=512, help="image side in pixels")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: ONNX Runtime's)")
    p.add_argument("--runs", type=int, default=50, help="timed calls of each kind")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls of each kind first")
    p.add_argument("--spin-wait", action="store_true", help="let ONNX Runtime's idle threads busy-wait")
    return p.parse_args(argv)


def export_zoo_model(arch: str, classes: int, output: str, folder: Path) -> Path:
    import torch

    from edgeseg.export import to_onnx
    from edgeseg.models import create

    torch.manual_seed(0)
    path = folder / f"{arch}.onnx"
    to_onnx(create(arch, num_classes=classes).eval(), path, output=output, validate=False)
    return path


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def measure(
    model: Path, size: int, threads: int | None, runs: int, warmup: int, spin_wait: bool
) -> dict[str, list[float]]:
    from edgeseg.runtime import Segmenter
    from edgeseg.runtime.ops import argmax_labels

    segmenter = Segmenter(model, provider="cpu", threads=threads, spin_wait=spin_wait)
    print(segmenter.describe())
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    tensor = segmenter.prepare([image])
    session, feeds = segmenter.session, {segmenter.io.input_name: tensor}
    outputs = [segmenter.io.output_name]
    logits = session.run(outputs, feeds)[0]
    kinds: dict[str, Callable[[], object]] = {
        "bare": lambda: session.run(outputs, feeds),
        "predict": lambda: segmenter.predict(image),
    }
    steps: dict[str, Callable[[], object]] = {"prepare": lambda: segmenter.prepare([image])}
    if logits.ndim == 4:
        steps["argmax"] = lambda: argmax_labels(logits[0])
    for fn in [*kinds.values(), *steps.values()]:
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in [*kinds, *steps]}
    for i in range(runs):
        order = list(kinds) if i % 2 == 0 else list(kinds)[::-1]
        for name in order:
            times[name].append(timed(kinds[name]))
        for name, fn in steps.items():
            times[name].append(timed(fn))
    return times


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or export_zoo_model(args.arch, args.classes, args.output, Path(folder))
        times = measure(model, args.size, args.threads, args.runs, args.warmup, args.spin_wait)
    median = {name: statistics.median(values) for name, values in times.items()}
    mean = {name: statistics.fmean(values) for name, values in times.items()}
    print(
        f"{args.size}x{args.size}, {args.runs} interleaved runs, threads={args.threads or 'default'}, "
        f"spin_wait={args.spin_wait}"
    )
    for name in times:
        print(f"  {name:8s} median {median[name]:8.2f} ms   mean {mean[name]:8.2f} ms")
    ratio = median["predict"] / median["bare"]
    print(
        f"predict / bare session.run: {ratio:.3f} (median), {mean['predict'] / mean['bare']:.3f} (mean); "
        f"overhead {median['predict'] - median['bare']:.2f} ms = {100 * (ratio - 1):.1f} %"
    )


if __name__ == "__main__":
    main()
