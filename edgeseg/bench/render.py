"""Renderers of benchmark results: a rich table, JSON, a markdown table, a matplotlib bar plot.

The JSON document is ``{"edgeseg_version", "created", "environment", "settings", "rows": [...]}``; each row
is :meth:`BenchResult.to_row`: ``model, engine, provider, precision, batch, height, width, threads`` then
``runs, warmup, p50_ms, p90_ms, p99_ms, mean_ms, min_ms, max_ms, std_ms, throughput_ips, peak_mem_mb,
mem_kind``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from edgeseg import __version__
from edgeseg.bench.timing import BenchResult
from edgeseg.fileio import atomic_path, write_text_atomic

COLUMNS = (
    "model",
    "engine",
    "provider",
    "precision",
    "batch",
    "size",
    "threads",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "mean ms",
    "img/s",
    "peak MiB",
)


def _cells(result: BenchResult) -> list[str]:
    c = result.config
    mem = "-" if result.peak_mem_mb is None else f"{result.peak_mem_mb:.0f}"
    return [
        c.model,
        c.engine,
        c.provider,
        c.precision,
        str(c.batch),
        f"{c.height}x{c.width}",
        "-" if c.threads is None else str(c.threads),
        f"{result.p50_ms:.2f}",
        f"{result.p90_ms:.2f}",
        f"{result.p99_ms:.2f}",
        f"{result.mean_ms:.2f}",
        f"{result.throughput_ips:.1f}",
        mem,
    ]


def console_table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    left: int = 1,
    caption: str | None = None,
) -> Any:
    """A ``rich.table.Table`` for an 80-column terminal: no cell wraps (a model name stays on one line),
    headers wrap only where they hold a newline, the first ``left`` columns are left-aligned, the rest right,
    and columns are separated by spaces rather than rules."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index < left else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def rich_table(results: Sequence[BenchResult], width: int | None = None) -> Any:
    """A console table with one line per configuration; settings shared by every line go to its caption.

    When ``width`` (the terminal's columns) is given and the table would be wider, the columns of
    ``_OPTIONAL`` are left out in that order (the JSON and markdown outputs keep them all).
    """
    rows = [_cells(result) for result in results]
    shared = [i for i, name in enumerate(COLUMNS) if name in _SETTINGS and len({row[i] for row in rows}) == 1]
    notes = [", ".join(f"{COLUMNS[i]} {rows[0][i]}" for i in shared)] if rows and shared else []
    keep = [i for i in range(len(COLUMNS)) if i not in shared]
    left_out: list[str] = []
    while True:
        headers = [_HEADERS.get(COLUMNS[i], COLUMNS[i]) for i in keep]
        left = sum(COLUMNS[i] in ("model", "engine", "provider") for i in keep)
        caption = "; ".join([*notes, *([f"not shown: {', '.join(left_out)}"] if left_out else [])]) or None
        cells = [[row[i] for i in keep] for row in rows]
        table = console_table("edgeseg bench (latency per batch)", headers, cells, left, caption)
        dropped = next((COLUMNS.index(name) for name in _OPTIONAL if COLUMNS.index(name) in keep), None)
        if width is None or natural_width(table) <= width or dropped is None:
            return table
        keep.remove(dropped)
        left_out.append(COLUMNS[dropped])


def natural_width(renderable: Any) -> int:
    """How many columns ``renderable`` takes when nothing constrains it."""
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(width=10_000)
    return Measurement.get(console, console.options, renderable).maximum


_SETTINGS = ("engine", "provider", "precision", "batch", "size", "threads")
_OPTIONAL = ("p99 ms", "mean ms", "peak MiB", "p90 ms")
_HEADERS = {name: name.replace(" ", "\n") for name in COLUMNS if name.endswith((" ms", " MiB"))}


def markdown_table(results: Sequence[BenchResult]) -> str:
    """A GitHub-flavoured markdown table with one line per configuration."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in results]
    return "\n".join(lines) + "\n"


def environment(threads: int | None = None) -> dict[str, Any]:
    """Where the figures come from: :func:`edgeseg.bench.machine.machine_info` (CPU, instruction sets,
    threads, library versions) plus the ONNX Runtime build's package and providers."""
    from edgeseg.bench.machine import machine_info
    from edgeseg.runtime.providers import ort_build_info

    info = machine_info(threads).to_dict()
    info["cpu_count"] = info["logical_cpus"]
    ort = ort_build_info()
    info["onnxruntime"] = {"package": ort.package, "version": ort.version, "providers": list(ort.providers)}
    return info


def json_document(results: Sequence[BenchResult], settings: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able document of a benchmark run."""
    return {
        "edgeseg_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
        "settings": settings,
        "rows": [r.to_row() for r in results],
    }


def write_json(path: str | os.PathLike, results: Sequence[BenchResult], settings: dict[str, Any]) -> None:
    """Write the JSON document atomically."""
    write_text_atomic(path, json.dumps(json_document(results, settings), indent=2) + "\n")


def write_markdown(path: str | os.PathLike, results: Sequence[BenchResult]) -> None:
    """Write the markdown table atomically."""
    write_text_atomic(path, markdown_table(results))


def write_plot(path: str | os.PathLike, results: Sequence[BenchResult]) -> None:
    """Horizontal latency bars, one per configuration, coloured by model: bar p50, whisker to p90, dot p99."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r.config.model for r in results))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(results) + 1.6))
    ys = list(range(len(results)))[::-1]
    for y, r in zip(ys, results, strict=True):
        color = colors[models.index(r.config.model) % len(colors)]
        ax.barh(y, r.p50_ms, color=color, xerr=[[0], [r.p90_ms - r.p50_ms]], capsize=3)
        ax.plot(r.p99_ms, y, "o", color="black", markersize=3)
    ax.set_yticks(ys, [r.config.label() for r in results], fontsize=8)
    ax.set_xlabel("latency per batch (ms): bar p50, whisker p90, dot p99")
    ax.set_title("edgeseg bench")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[i % len(colors)]) for i in range(len(models))]
    ax.legend(handles, models, fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
