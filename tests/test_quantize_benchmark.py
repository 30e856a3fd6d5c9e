"""benchmarks/quantize.py: the verdict against issue 7's targets and the markdown it writes (no timing)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quantize.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quantize_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SETTINGS: dict[str, Any] = {
    "size": 512, "threads": 1, "runs": 30, "cpu_runs": 15, "calib": "synthetic", "calib_size": 64,
    "val_size": 200, "method": "minmax", "max_drop": 1.0, "cpu": "AMD EPYC, avx2 (no VNNI, no AMX)",
    "vnni": False, "onnxruntime": "1.32.0", "cores": 2, "load_start": 4.2, "load_end": 4.5,
    "command": "python benchmarks/quantize.py --student s.pt", "seconds": 100.0,
}  # fmt: skip


def row(role: str, speedup: float, speedup_cpu: float, drop: float = 0.1, **extra: Any) -> dict[str, Any]:
    return {
        "role": role, "model": "m", "gate": "passed", "fp32_p50_ms": 10 * speedup, "int8_p50_ms": 10.0,
        "speedup": speedup, "fp32_cpu_ms": 10 * speedup_cpu, "int8_cpu_ms": 10.0, "speedup_cpu": speedup_cpu,
        "miou_fp32": 60.0, "miou_int8": 60.0 - drop, "drop": drop, "float_nodes": [], "params_m": 1.0,
        "gmacs": 2.8, "training": "6 of 6 epochs", **extra,
    }  # fmt: skip


def test_met_needs_wall_and_cpu_time_and_a_split_result_says_which(bench: ModuleType) -> None:
    rows = [
        row("student", 1.6, 1.55),
        row("teacher", 2.6, 2.4),
        row("student", 1.4, 1.6),
        row("teacher", 2, 2.4),
    ]
    lines = bench.verdicts(rows, SETTINGS)
    assert "student (m): met**" in lines[0]
    assert (
        "teacher (m): met in wall time only**" in lines[1]
        and "2.60x (wall time, p50), 2.40x (CPU" in lines[1]
    )
    assert "student (m): met in CPU time only**" in lines[2]
    assert "teacher (m): not met**" in lines[3]


def test_the_student_must_also_keep_its_accuracy(bench: ModuleType) -> None:
    (line,) = bench.verdicts([row("student", 1.9, 1.9, drop=1.2)], SETTINGS)
    assert "not met**" in line and "1.20 mIoU points lost" in line


def test_a_failed_gate_is_not_met_and_the_markdown_says_why(bench: ModuleType) -> None:
    failed = {
        "role": "student",
        "model": "m",
        "gate": "failed: drop 3.00 > 1.00",
        "params_m": 1.0,
        "gmacs": 2.8,
    }
    text = bench.markdown([failed, row("teacher", 1.8, 1.7, tiny=True)], SETTINGS)
    assert "**student: not met**" in text and "failed: drop 3.00 > 1.00" in text
    assert "**teacher (m): not met**" in text and "not a claim" in text
    assert "AVX2" in text and "no VNNI" in text and SETTINGS["command"] in text
    header = next(line for line in text.splitlines() if line.startswith("| model"))
    for line in text.splitlines():
        if line.startswith("| ") and line != header:
            assert line.count("|") == header.count("|"), line  # every row fills every column
