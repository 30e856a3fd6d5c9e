"""Benchmark: what does ``Segmenter.predict`` cost on top of the bare ``session.run``?

On one 512×512 RGB image, with ONNX Runtime sessions in the same process, this times

* ``bare``: ``session.run`` on an input tensor prepared beforehand (normalized NCHW float32, or the raw uint8
  NHWC image for in-graph preprocessing), giving the model's raw output;
* ``predict``: ``Segmenter.predict(image)``: uint8 image in, label map of the image's size out (normalization
  unless the graph does it, the same ``session.run``, the argmax, cropping).

Every form of the model is loaded first; then each timed round calls ``bare`` and ``predict`` of every form,
the order rotating from round to round, so that load from other processes hits all alike and the forms can
be compared with each other in the same run. The ratio of medians is printed per form, with the runtime's
own steps timed separately, and, when the ``logits`` form is measured, every form's ``predict`` against the
bare ``session.run`` of the plain export: the network with its final upsampling, the least any caller of the
model pays.

Export forms (``--forms``), each measured against its own bare ``session.run``:

* ``logits`` (the default export): float NCHW in, full-size logits out; the runtime normalizes, takes the
  argmax;
* ``argmax`` (``edgeseg export --argmax``): float NCHW in, uint8 labels out; the runtime only normalizes;
* ``preprocess`` (``--preprocess``): uint8 NHWC in, logits out; ONNX Runtime normalizes;
* ``in-graph`` (``--preprocess --argmax``): uint8 NHWC in, labels out; the runtime only hands over the image;
* ``coarse`` (``--coarse``): float NCHW in, logits at the output stride out (the graph stops before its
  final bilinear upsampling); the runtime normalizes and labels the full-size image from the coarse logits
  (``upsample_argmax``: only cells on class boundaries are interpolated);
* ``coarse-preprocess`` (``--coarse --preprocess``): uint8 NHWC in, coarse logits out.

The cost of ``upsample_argmax`` grows with the share of coarse cells that straddle a class boundary, so it
depends on the weights and the image: ``--checkpoint`` exports a trained model and ``--image`` takes a real
picture (default: a synthetic scene from ``edgeseg.data.synthetic`` at the benchmark's size). Without a
checkpoint the weights are random (seed 0), whose label maps are far more fragmented than a trained
model's: the worst case for the coarse forms. The share of boundary cells is printed.

    python benchmarks/runtime_overhead.py --threads 1                        # lraspp_dsnet, random weights
    python benchmarks/runtime_overhead.py --checkpoint runs/x/best.pt --threads 1 --runs 100
    python benchmarks/runtime_overhead.py --arch deeplabv3plus_mobilenetv2 --classes 21 --forms logits,coarse
    python benchmarks/runtime_overhead.py --model model.onnx --threads 2      # one ONNX file as it is
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeseg.bench.machine import machine_info

FORMS = {
    "logits": {"output": "logits", "preprocess": False},
    "argmax": {"output": "argmax", "preprocess": False},
    "preprocess": {"output": "logits", "preprocess": True},
    "in-graph": {"output": "argmax", "preprocess": True},
    "coarse": {"output": "logits", "preprocess": False, "coarse": True},
    "coarse-preprocess": {"output": "logits", "preprocess": True, "coarse": True},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="one ONNX file, measured as it is (no export)")
    p.add_argument("--checkpoint", type=Path, help="edgeseg checkpoint to export (default: --arch, random)")
    p.add_argument("--arch", default="lraspp_dsnet", help="zoo model to export with random weights")
    p.add_argument("--classes", type=int, default=8, help="classes of the --arch model")
    p.add_argument(
        "--forms",
        default="logits,preprocess,coarse,coarse-preprocess",
        help=f"comma-separated export forms: {', '.join(FORMS)} (see above)",
    )
    p.add_argument("--image", type=Path, help="RGB image, resized to --size (default: a synthetic scene)")
    p.add_argument("--size", type=int, default=512, help="image side in pixels")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: ONNX Runtime's)")
    p.add_argument("--runs", type=int, default=50, help="timed rounds")
    p.add_argument("--warmup", type=int, default=5, help="untimed rounds first")
    p.add_argument("--spin-wait", action="store_true", help="let ONNX Runtime's idle threads busy-wait")
    return p.parse_args(argv)


def export_form(args: argparse.Namespace, form: str, folder: Path) -> Path:
    """Export the checkpoint, or ``--arch`` with random weights (seed 0), in one of :data:`FORMS`."""
    import torch

    from edgeseg.checkpoint import model_from_checkpoint
    from edgeseg.export import to_onnx
    from edgeseg.models import create

    torch.manual_seed(0)
    if args.checkpoint:
        model = model_from_checkpoint(args.checkpoint)
    else:
        model = create(args.arch, num_classes=args.classes)
    path = folder / f"{form}.onnx"
    to_onnx(model.eval(), path, **FORMS[form], validate=False)
    return path


def load_image(args: argparse.Namespace) -> np.ndarray:
    from PIL import Image

    if args.image:
        with Image.open(args.image) as im:
            return np.asarray(im.convert("RGB").resize((args.size, args.size), Image.BILINEAR))
    from edgeseg.data.synthetic import generate_scene

    return generate_scene(np.random.default_rng(0), args.size, args.size)[0]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def boundary_share(scores: np.ndarray) -> float:
    """Share of coarse cells (2×2 neighbouring pixels) whose corners do not all have the same argmax."""
    top = scores.argmax(axis=0)
    corner = top[:-1, :-1]
    same = (top[1:, :-1] == corner) & (top[:-1, 1:] == corner) & (top[1:, 1:] == corner)
    return float(1.0 - same.mean())


def calls(
    model: Path, image: np.ndarray, threads: int | None, spin_wait: bool
) -> dict[str, Callable[[], object]]:
    """The timed calls of one form: ``bare``, ``predict`` and the runtime's own steps."""
    from edgeseg.runtime import Segmenter
    from edgeseg.runtime.ops import Scratch, argmax_labels, upsample_argmax

    segmenter = Segmenter(model, provider="cpu", threads=threads, spin_wait=spin_wait)
    print(segmenter.describe())
    tensor = segmenter.prepare([image])
    session, feeds = segmenter.session, {segmenter.io.input_name: tensor}
    outputs = [segmenter.io.output_name]
    scores = session.run(outputs, feeds)[0][0]
    fns: dict[str, Callable[[], object]] = {
        "bare": lambda: session.run(outputs, feeds),
        "predict": lambda: segmenter.predict(image),
    }
    if not segmenter.io.graph_preprocess:
        fns["prepare"] = lambda: segmenter.prepare([image])
    if segmenter.upsample > 1:
        scratch = Scratch()
        fns["labels"] = lambda: upsample_argmax(scores, segmenter.upsample, scratch)
        print(f"  coarse logits {scores.shape}: {100 * boundary_share(scores):.1f} % of cells on a boundary")
    elif scores.ndim == 3:
        fns["labels"] = lambda: argmax_labels(scores)
    return fns


def measure(
    forms: dict[str, dict[str, Callable[[], object]]], runs: int, warmup: int
) -> dict[str, dict[str, list[float]]]:
    """Time every call of every form; each round visits the forms' bare and predict in a rotated order."""
    pairs = [(form, kind) for form in forms for kind in ("bare", "predict")]
    steps = [(form, kind) for form, fns in forms.items() for kind in fns if kind not in ("bare", "predict")]
    for form, kind in pairs + steps:
        for _ in range(warmup):
            forms[form][kind]()
    times: dict[str, dict[str, list[float]]] = {
        form: {kind: [] for kind in fns} for form, fns in forms.items()
    }
    for i in range(runs):
        shift = i % len(pairs)
        order = pairs[shift:] + pairs[:shift]
        if i % 2:
            order.reverse()
        for form, kind in order + steps:
            times[form][kind].append(timed(forms[form][kind]))
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
        raise SystemExit(f"unknown form(s) {unknown}; choose from {', '.join(FORMS)}")
    image = load_image(args)
    with tempfile.TemporaryDirectory() as folder:
        models = (
            {args.model.name: args.model}
            if args.model
            else {form: export_form(args, form, Path(folder)) for form in forms}
        )
        fns = {label: calls(model, image, args.threads, args.spin_wait) for label, model in models.items()}
        print(
            f"{args.size}x{args.size}, {args.runs} interleaved rounds, threads={args.threads or 'default'}, "
            f"spin_wait={args.spin_wait}"
        )
        print(f"machine: {machine_info(args.threads).describe()}")
        times = measure(fns, args.runs, args.warmup)
    medians = {label: summarize(label, form_times) for label, form_times in times.items()}
    if len(medians) > 1:
        print(
            "predict latency (what an application sees): "
            + ", ".join(f"{label} {m['predict']:.2f} ms" for label, m in medians.items())
        )
    if "logits" in medians and len(medians) > 1:
        bare = medians["logits"]["bare"]
        print(
            f"predict / bare session.run of the plain export ({bare:.2f} ms, network and upsampling): "
            + ", ".join(f"{label} {m['predict'] / bare:.3f}" for label, m in medians.items())
        )


if __name__ == "__main__":
    main()
