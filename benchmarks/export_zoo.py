"""Benchmark: both torch exporters on every zoo model — does it export, simplify and pass the parity gate?

For each model (random weights, ``--classes`` classes) and each exporter, ``edgeseg.export.to_onnx`` exports
with dynamic batch/height/width, simplifies, and validates against PyTorch (odd, non-square and batch-2
inputs). Printed first: the machine (``edgeseg.bench.machine``) as one JSON line; then per row:
export+validate seconds, nodes before → after simplification, the parity figures,
and the ONNX Runtime median latency of the two exports of one model, interleaved call by call so that load
from other processes hits both alike (``--runs`` calls each, 1 thread, ``--size``).

This is the evidence behind the default exporter (``torchscript``): see ``edgeseg/export/torch_export.py``.

    python benchmarks/export_zoo.py                              # every model, both exporters
    python benchmarks/export_zoo.py --models lraspp_dsnet unet_ds --runs 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeseg.bench.machine import machine_info

OPSETS = {"torchscript": 17, "dynamo": 18}  # dynamo cannot write opset 17 for models that pad


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", help="zoo models (default: all)")
    p.add_argument("--exporters", nargs="*", default=list(OPSETS), choices=list(OPSETS))
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--size", type=int, default=256, help="square input side for the latency figure")
    p.add_argument("--runs", type=int, default=10, help="timed ONNX Runtime calls per export")
    return p.parse_args(argv)


def export_row(name: str, exporter: str, classes: int, folder: Path) -> tuple[dict, Path | None]:
    """Export one model with one exporter; the row of figures and the file (None when it failed)."""
    import torch

    from edgeseg.export import to_onnx
    from edgeseg.models import create

    torch.manual_seed(0)
    model = create(name, num_classes=classes)
    path = folder / f"{name}-{exporter}.onnx"
    start = time.perf_counter()
    row: dict = {"model": name, "exporter": exporter, "opset": OPSETS[exporter]}
    try:
        report = to_onnx(model, path, exporter=exporter, opset=OPSETS[exporter], force=True)
    except Exception as err:  # a failing exporter is a result of this benchmark, not a crash
        row.update(seconds=round(time.perf_counter() - start, 1), error=str(err)[:300])
        return row, None
    row.update(
        seconds=round(time.perf_counter() - start, 1),
        nodes=f"{report.nodes_exported} -> {report.nodes_final}",
        passed=report.validation.passed,
        max_abs_diff=report.validation.max_abs_diff,
        agreement=report.validation.agreement,
    )
    return row, path


def interleaved_latency(paths: dict[str, Path], size: int, runs: int) -> dict[str, float]:
    """Median ms per exporter's file, calls alternating between the sessions."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    cpu = ["CPUExecutionProvider"]
    sessions = {k: ort.InferenceSession(str(p), options, providers=cpu) for k, p in paths.items()}
    x = np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for session in sessions.values():
        session.run(None, {"input": x})
    for i in range(runs):
        order = list(sessions.items()) if i % 2 == 0 else list(sessions.items())[::-1]
        for key, session in order:
            start = time.perf_counter()
            session.run(None, {"input": x})
            times[key].append(1000 * (time.perf_counter() - start))
    return {k: round(statistics.median(v), 2) for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    from edgeseg.models import list_models

    torch.set_num_threads(1)
    print(json.dumps({"machine": machine_info(threads=1).to_dict()}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models or list_models():
            rows, paths = [], {}
            for exporter in args.exporters:
                row, path = export_row(name, exporter, args.classes, Path(tmp))
                rows.append(row)
                if path is not None:
                    paths[exporter] = path
            latency = interleaved_latency(paths, args.size, args.runs) if paths else {}
            for row in rows:
                row[f"ort_ms_{args.size}"] = latency.get(row["exporter"])
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
