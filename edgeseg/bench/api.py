"""``bench_models``: what ``edgeseg bench`` runs: load the models, plan the configurations, time them."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from edgeseg.bench.engines import check_providers, load_specs, plan_cases, temporary_folder, with_exports
from edgeseg.bench.timing import BenchResult, check_budget, run_benchmarks
from edgeseg.errors import InputError


def bench_models(
    models: Sequence[str | os.PathLike],
    sizes: Sequence[tuple[int, int]] = ((512, 512),),
    batches: Sequence[int] = (1,),
    threads: Sequence[int | None] = (None,),
    providers: Sequence[str] = ("cpu",),
    warmup: int = 10,
    runs: int | None = None,
    seconds: float | None = None,
    with_onnx: bool = False,
    interleave: bool = True,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[BenchResult], list[str]]:
    """Benchmark ONNX files and/or checkpoints side by side; returns the results and planning notes.

    Checkpoints are timed in PyTorch eager; ``with_onnx`` also exports each one to a temporary ONNX file
    (``edgeseg.export``) timed by ONNX Runtime in the same run. Without ``runs`` and ``seconds``, 50 runs.
    """
    if not models:
        raise InputError("give at least one model (an .onnx file or an edgeseg checkpoint)")
    if any(b < 1 for b in batches):
        raise InputError(f"batch sizes must be >= 1, got {list(batches)}")
    if any(h < 1 or w < 1 for h, w in sizes):
        raise InputError(f"sizes must be positive, got {list(sizes)}")
    if runs is None and seconds is None:
        runs = 50
    check_budget(warmup, runs, seconds)
    specs = load_specs(models)
    engines = {spec.engine for spec in specs} | ({"onnxruntime"} if with_onnx else set())
    check_providers(providers, engines)
    with temporary_folder() as folder:
        if with_onnx:
            specs = with_exports(specs, Path(folder))
        cases, notes = plan_cases(specs, sizes, batches, threads, providers)
        if not cases:
            raise InputError(f"no configuration can run: {'; '.join(notes) or 'nothing requested'}")
        results = run_benchmarks(
            cases, warmup=warmup, runs=runs, seconds=seconds, interleave=interleave, progress=progress
        )
    return results, notes
