"""Benchmark: what does ``Segmenter.predict`` cost on top of the bare ``session.run``?

On one 512×512 RGB image, with the same ONNX Runtime session in the same process, this times

* ``bare``: ``session.run`` on an input tensor prepared beforehand (normalized NCHW float32), giving logits;
* ``predict``: ``Segmenter.predict(image)``: uint8 image in, label map out (normalization, the same
  ``session.run``, argmax over classes, cropping).

The two are interleaved call by call (their order alternating) so that load from other processes hits both
alike, and the ratio of their medians is printed, with the runtime's own steps timed separately. The model is
an ONNX file (``--model``) or, by default, a zoo architecture exported with ``edgeseg.export.to_onnx``
(random weights: the cost does not depend on them).

Export forms (``--forms``), each measured against its own bare ``session.run``:

* ``logits`` (the default export): float NCHW in, logits out; the runtime normalizes and takes the argmax;
* ``argmax`` (``edgeseg export --argmax``): float NCHW in, uint8 labels out; ONNX Runtime takes the argmax,
  the runtime only normalizes;
* ``preprocess`` (``edgeseg export --preprocess``): uint8 NHWC in, logits out; ONNX Runtime normalizes, the
  runtime takes the argmax;
* ``in-graph`` (``--preprocess --argmax``): uint8 NHWC in, labels out; the runtime only hands over the image.

The default measures ``logits`` and ``argmax``; the last line compares the forms' ``predict`` latencies, which
is what an application sees.

    python benchmarks/runtime_overhead.py                          # lraspp_dsnet, 8 classes (synthetic)
    python benchmarks/runtime_overhead.py --arch deeplabv3plus_mobilenetv2 --classes 21 --threads 2
    python benchmarks/runtime_overhead.py --forms logits           # one form only
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
        "--forms",
        default="logits,argmax",
        help="comma-separated export forms of --arch: logits, argmax, preprocess, in-graph (see above)",
    )
    p.add_argument("--size", type=int, default=512, help="image side in pixels")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: ONNX Runtime's)")
    p.add_argument("--runs", type=int, default=50, help="timed calls of each kind")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls of each kind first")
    p.add_argument("--spin-wait", action="store_true", help="let ONNX Runtime's idle threads busy-wait")
    return p.parse_args(argv)


FORMS = {
    "logits": {"output": "logits", "preprocess": False},
    "argmax": {"output": "argmax", "preprocess": False},
    "preprocess": {"output": "logits", "preprocess": True},
    "in-graph": {"output": "argmax", "preprocess": True},
}


def export_zoo_model(arch: str, classes: int, form: str, folder: Path) -> Path:
    """Export ``arch`` with random weights (seed 0) in one of :data:`FORMS`."""
    import torch

    from edgeseg.export import to_onnx
    from edgeseg.models import create

    torch.manual_seed(0)
    path = folder / f"{arch}-{form}.onnx"
    to_onnx(create(arch, num_classes=classes).eval(), path, **FORMS[form], validate=False)
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


def summarize(label: str, times: dict[str, list[float]]) -> dict[str, float]:
    """Print the medians and means of one form's timings; return the medians."""
    median = {name: statistics.median(values) for name, values in times.items()}
    mean = {name: statistics.fmean(values) for name, values in times.items()}
    print(f"[{label}]")
    for name in times:
        print(f"  {name:8s} median {median[name]:8.2f} ms   mean {mean[name]:8.2f} ms")
    ratio = median["predict"] / median["bare"]
    print(
        f"  predict / bare session.run: {ratio:.3f} (median), {mean['predict'] / mean['bare']:.3f} (mean); "
        f"overhead {median['predict'] - median['bare']:.2f} ms = {100 * (ratio - 1):.1f} %"
    )
    return median


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    unknown = [f for f in forms if f not in FORMS]
    if unknown and not args.model:
        raise SystemExit(f"unknown form(s) {unknown}; choose from {sorted(FORMS)}")
    medians: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        models = (
            {args.model.name: args.model}
            if args.model
            else {form: export_zoo_model(args.arch, args.classes, form, Path(folder)) for form in forms}
        )
        print(
            f"{args.size}x{args.size}, {args.runs} interleaved runs, threads={args.threads or 'default'}, "
            f"spin_wait={args.spin_wait}"
        )
        for label, model in models.items():
            times = measure(model, args.size, args.threads, args.runs, args.warmup, args.spin_wait)
            medians[label] = summarize(label, times)
    if len(medians) > 1:
        print(
            "predict latency (what an application sees): "
            + ", ".join(f"{label} {m['predict']:.2f} ms" for label, m in medians.items())
        )


if __name__ == "__main__":
    main()
