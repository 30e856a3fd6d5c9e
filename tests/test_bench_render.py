"""Console tables fit an 80-column terminal without wrapping or cutting model names."""

from __future__ import annotations

from rich.console import Console

from edgeseg.bench.render import rich_table
from edgeseg.bench.timing import BenchConfig, BenchResult

LONG = "distilled_student_lraspp_dsnet_int8"


def _result(model: str, engine: str = "onnxruntime", precision: str = "fp32", ms: float = 12.34):
    config = BenchConfig(model, engine, "cpu", precision, 1, 512, 512, 2)
    spread = (1.1 * ms, 1.3 * ms, ms, 0.9 * ms, 1.5 * ms, 0.5)
    return BenchResult(config, 50, 10, ms, *spread, 1000 / ms, 123.0, "rss")


def _render(table, width: int = 80) -> list[str]:
    console = Console(width=width, record=True)
    with console.capture() as captured:
        console.print(table)
    return captured.get().splitlines()


def test_bench_table_fits_80_columns_with_whole_model_names() -> None:
    results = [
        _result("deeplabv3plus_mobilenetv2"),
        _result(LONG, precision="int8", ms=3.21),
        _result("deeplabv3plus_mobilenetv2", engine="torch", ms=156.7),
    ]
    lines = _render(rich_table(results, 80))
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert sum(LONG in line for line in lines) == 1 and "…" not in "".join(lines)
    assert any("156.70" in line and "torch" in line for line in lines)
    text = " ".join(lines)
    assert "provider cpu" in text and "size 512x512" in text  # shared settings move to the caption
    assert "not shown: p99 ms" in text


def test_bench_table_keeps_every_column_when_there_is_room() -> None:
    results = [_result("lraspp_dsnet"), _result("fpn_qdsnet", ms=4.5)]
    lines = _render(rich_table(results, 200), 200)
    header = " ".join(lines[:5])
    for name in ("p50", "p90", "p99", "mean", "img/s", "peak"):
        assert name in header
    assert "not shown" not in " ".join(lines)
    assert _render(rich_table(results), 200) == lines  # no width given: everything
