"""Latency benchmarks: one timing function returning dataclasses of percentiles, and separate renderers.

``bench_models`` times ONNX files (ONNX Runtime) and checkpoints (PyTorch eager) side by side;
``run_benchmarks`` times any :class:`BenchCase`; ``edgeseg.bench.render`` turns results into a rich table,
JSON, markdown or a plot. Importing this package does not import torch.
"""

from edgeseg.bench.api import bench_models
from edgeseg.bench.timing import (
    BenchCase,
    BenchConfig,
    BenchResult,
    PeakRSS,
    Runnable,
    run_benchmarks,
    summarize,
)

__all__ = [
    "BenchCase",
    "BenchConfig",
    "BenchResult",
    "PeakRSS",
    "Runnable",
    "bench_models",
    "run_benchmarks",
    "summarize",
]
