"""Latency measurement: warm-up, timed runs, percentiles, throughput and peak memory, as dataclasses.

:func:`run_benchmarks` is the one timing function. Each :class:`BenchCase` builds its engine in ``setup``
and returns a :class:`Runnable`; its first runs are warm-up (never timed), then every call is timed on its
own with ``time.perf_counter_ns``.

Interleaving (the default): all cases are set up first, then timed round-robin, one call of each case per
round. On a shared, noisy machine the load drifts over seconds; timing case A for a minute and then case B
for the next turns that drift into a fake A/B ratio, while round-robin makes every case see the same load.
The price is that all engines are in memory at once. ``interleave=False`` times the cases one after another,
each alone in memory, which is the fairer choice for memory figures and for very large models.

Peak memory: the increase of the process's peak resident set (Linux ``VmHWM``, reset before each case through
``/proc/self/clear_refs``) while the case builds its engine and warms up, so it covers weights, arenas and
activations; ``mem_kind`` says ``rss_delta``. Runnables that can report an exact device peak (PyTorch on CUDA)
give that instead (``mem_kind`` ``cuda_peak``). The figure is approximate: memory freed by earlier cases can
be reused by the allocator and go uncounted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import InputError

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class BenchConfig:
    """One measured configuration: which model on which engine, provider, precision, batch, size, threads."""

    model: str
    engine: str
    provider: str
    precision: str
    batch: int
    height: int
    width: int
    threads: int | None

    def label(self) -> str:
        """Short text naming the configuration, for tables and plots."""
        threads = "" if self.threads is None else f" t{self.threads}"
        return (
            f"{self.model} {self.engine}/{self.provider} {self.precision} "
            f"b{self.batch} {self.height}x{self.width}{threads}"
        )


@dataclass
class Runnable:
    """A prepared engine: ``call()`` runs one batch (timed); ``before()`` runs untimed before each call."""

    call: Callable[[], Any]
    before: Callable[[], None] = field(default=lambda: None)
    device_peak_mb: Callable[[], float | None] | None = None


@dataclass
class BenchCase:
    """A configuration and the function that builds its engine (called once, before warm-up)."""

    config: BenchConfig
    setup: Callable[[], Runnable]


@dataclass
class BenchResult:
    """Latency statistics of one configuration (milliseconds per batch) and its throughput (images/s)."""

    config: BenchConfig
    runs: int
    warmup: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    throughput_ips: float
    peak_mem_mb: float | None
    mem_kind: str

    def to_row(self) -> dict[str, Any]:
        """A flat JSON-able row: the configuration's fields followed by the statistics."""
        row = asdict(self.config)
        stats = asdict(self)
        del stats["config"]
        row.update(stats)
        return row


def summarize(times_ms: Sequence[float], batch: int) -> dict[str, float]:
    """Percentiles (linear interpolation), mean, spread and throughput of per-batch latencies."""
    if len(times_ms) == 0:
        raise ValueError("no timings to summarize")
    arr = np.asarray(times_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    mean = float(arr.mean())
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": mean,
        "min_ms": float(arr.min()),
        "max_ms": float(arr.max()),
        "std_ms": float(arr.std()),
        "throughput_ips": batch * 1000.0 / mean if mean > 0 else float("inf"),
    }


def _status_kb(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class PeakRSS:
    """Context manager measuring how far the process's peak resident memory rises inside it, in MiB."""

    def __init__(self) -> None:
        self.delta_mb: float | None = None
        self._start_kb: int | None = None

    def __enter__(self) -> PeakRSS:
        try:
            _CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident size
        except OSError:
            self._start_kb = None
            return self
        self._start_kb = _status_kb("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        peak = _status_kb("VmHWM")
        if self._start_kb is not None and peak is not None:
            self.delta_mb = max(0.0, (peak - self._start_kb) / 1024.0)


def check_budget(warmup: int, runs: int | None, seconds: float | None) -> None:
    """Refuse a negative warm-up, both or neither of ``runs`` and ``seconds``, or non-positive values."""
    if warmup < 0:
        raise InputError(f"warmup must be >= 0, got {warmup}")
    if (runs is None) == (seconds is None):
        raise InputError("give exactly one of runs and seconds")
    if runs is not None and runs < 1:
        raise InputError(f"runs must be >= 1, got {runs}")
    if seconds is not None and seconds <= 0:
        raise InputError(f"seconds must be > 0, got {seconds}")


def _time_once(runnable: Runnable) -> float:
    runnable.before()
    start = time.perf_counter_ns()
    runnable.call()
    return (time.perf_counter_ns() - start) / 1e6


def _prepare(case: BenchCase, warmup: int) -> tuple[Runnable, float | None, str]:
    with PeakRSS() as rss:
        runnable = case.setup()
        for _ in range(warmup):
            runnable.before()
            runnable.call()
    device_peak = runnable.device_peak_mb() if runnable.device_peak_mb else None
    if device_peak is not None:
        return runnable, device_peak, "cuda_peak"
    return runnable, rss.delta_mb, "rss_delta" if rss.delta_mb is not None else "unavailable"


def run_benchmarks(
    cases: Sequence[BenchCase],
    warmup: int = 10,
    runs: int | None = None,
    seconds: float | None = None,
    interleave: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Time every case: ``warmup`` untimed calls, then ``runs`` timed calls or calls for ``seconds`` each.

    With ``interleave`` the timed calls go round-robin over the cases (every case gets the same number of
    calls; with ``seconds`` the rounds continue until ``seconds × len(cases)`` have passed); otherwise each
    case is timed alone and released before the next one is built. ``progress`` receives a line per phase.
    """
    check_budget(warmup, runs, seconds)
    report = progress or (lambda _line: None)
    results: list[BenchResult] = []
    if not interleave:
        for case in cases:
            report(f"warming up {case.config.label()}")
            runnable, mem, kind = _prepare(case, warmup)
            report(f"timing {case.config.label()}")
            times = _timed_rounds([runnable], runs, seconds)[0]
            results.append(_result(case.config, times, warmup, mem, kind))
            del runnable
        return results
    prepared = []
    for case in cases:
        report(f"warming up {case.config.label()}")
        prepared.append(_prepare(case, warmup))
    report(f"timing {len(cases)} configurations round-robin")
    all_times = _timed_rounds([p[0] for p in prepared], runs, seconds)
    for case, (_, mem, kind), times in zip(cases, prepared, all_times, strict=True):
        results.append(_result(case.config, times, warmup, mem, kind))
    return results


def _timed_rounds(runnables: list[Runnable], runs: int | None, seconds: float | None) -> list[list[float]]:
    times: list[list[float]] = [[] for _ in runnables]
    budget = None if seconds is None else seconds * len(runnables)
    start = time.perf_counter()
    done = 0
    while (runs is not None and done < runs) or (budget is not None and time.perf_counter() - start < budget):
        for i, runnable in enumerate(runnables):
            times[i].append(_time_once(runnable))
        done += 1
    return times


def _result(
    config: BenchConfig, times: list[float], warmup: int, mem: float | None, kind: str
) -> BenchResult:
    return BenchResult(
        config=config,
        runs=len(times),
        warmup=warmup,
        peak_mem_mb=mem,
        mem_kind=kind,
        **summarize(times, config.batch),
    )
