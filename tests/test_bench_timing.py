"""The timing core of `edgeseg bench`: statistics, warm-up, round-robin order, budgets, memory."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.bench import BenchCase, BenchConfig, PeakRSS, Runnable, run_benchmarks, summarize
from edgeseg.errors import InputError


def config(name: str, batch: int = 1) -> BenchConfig:
    return BenchConfig(name, "onnxruntime", "cpu", "fp32", batch, 8, 8, 1)


def test_summary_statistics():
    stats = summarize([float(v) for v in range(1, 101)], batch=4)
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p90_ms"] == pytest.approx(90.1)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert stats["mean_ms"] == pytest.approx(50.5) and stats["min_ms"] == 1 and stats["max_ms"] == 100
    assert stats["throughput_ips"] == pytest.approx(4 * 1000 / 50.5)


def recording_cases(log: list[str], names: str) -> list[BenchCase]:
    def make(name: str) -> BenchCase:
        def setup() -> Runnable:
            log.append(f"setup {name}")
            return Runnable(call=lambda: log.append(name))

        return BenchCase(config(name), setup)

    return [make(n) for n in names]


def test_interleaved_runs_go_round_robin_after_warmup():
    log: list[str] = []
    results = run_benchmarks(recording_cases(log, "ab"), warmup=2, runs=3)
    assert log == ["setup a", "a", "a", "setup b", "b", "b", "a", "b", "a", "b", "a", "b"]
    assert [r.runs for r in results] == [3, 3] and [r.warmup for r in results] == [2, 2]
    assert all(0 <= r.min_ms <= r.p50_ms <= r.p90_ms <= r.p99_ms <= r.max_ms for r in results)


def test_sequential_mode_times_cases_one_after_another():
    log: list[str] = []
    run_benchmarks(recording_cases(log, "ab"), warmup=1, runs=2, interleave=False)
    assert log == ["setup a", "a", "a", "a", "setup b", "b", "b", "b"]


def test_seconds_budget_and_argument_checks():
    log: list[str] = []
    results = run_benchmarks(recording_cases(log, "ab"), warmup=0, seconds=0.05)
    assert results[0].runs == results[1].runs >= 1
    with pytest.raises(InputError):
        run_benchmarks(recording_cases(log, "a"), runs=2, seconds=1.0)
    with pytest.raises(InputError):
        run_benchmarks(recording_cases(log, "a"), runs=0)


def test_peak_memory_sees_a_temporary_allocation():
    with PeakRSS() as rss:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        del block
    if rss.delta_mb is None:
        pytest.skip("peak RSS cannot be reset on this platform")
    assert 50 < rss.delta_mb < 200
