"""``edgeseg bench``: latency percentiles, throughput and memory of models side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def parse_sizes(values: list[str]) -> list[tuple[int, int]]:
    """``["512x512", "256x384,128x128"]`` → ``[(512, 512), (256, 384), (128, 128)]`` (H×W; "512" = square)."""
    from edgeseg.sizes import parse_hw

    parts = [p.strip() for value in values for p in value.split(",")]
    sizes = [parse_hw(part, "--size", square=True) for part in parts if part]
    return list(dict.fromkeys(sizes))


def parse_ints(value: str, option: str) -> list[int]:
    """``"1,4"`` → ``[1, 4]``; every value must be a positive integer."""
    from edgeseg.errors import InputError

    try:
        numbers = [int(p) for p in value.split(",") if p.strip()]
    except ValueError as err:
        raise InputError(f"{option} {value!r} must be comma-separated integers, e.g. 1,4") from err
    if not numbers or any(n < 1 for n in numbers):
        raise InputError(f"{option} {value!r} must list positive integers")
    return list(dict.fromkeys(numbers))


def default_threads() -> int:
    """The CPUs this process may run on (the figure recorded when --threads is not given)."""
    from edgeseg.bench.machine import usable_cpus

    return usable_cpus() or 1


def bench(
    models: Annotated[list[Path], typer.Argument(help="ONNX files and/or edgeseg checkpoints (.pt).")],
    size: Annotated[
        list[str] | None, typer.Option("--size", help="HxW, repeatable or comma-separated.")
    ] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated.")] = "1",
    threads: Annotated[
        str | None, typer.Option(help="Thread counts, comma-separated (default: all CPUs).")
    ] = None,
    provider: Annotated[str, typer.Option(help="Providers, comma-separated: cpu, cuda, tensorrt.")] = "cpu",
    warmup: Annotated[int, typer.Option(help="Untimed runs per configuration.")] = 10,
    runs: Annotated[int | None, typer.Option(help="Timed runs per configuration (default 50).")] = None,
    seconds: Annotated[
        float | None, typer.Option(help="Time each configuration for about this long.")
    ] = None,
    onnx: Annotated[
        bool, typer.Option("--onnx", help="Also export checkpoints and time ONNX Runtime.")
    ] = False,
    sequential: Annotated[
        bool, typer.Option("--sequential", help="Time configurations one after another, not round-robin.")
    ] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the rows as JSON.")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write a markdown table.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a latency bar plot (PNG).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
) -> None:
    """Time models with warm-up and report p50/p90/p99/mean latency, throughput and peak memory.

    Configurations (model × provider × threads × size × batch) are timed round-robin so that a noisy
    machine affects them alike; --sequential times them one at a time instead.
    """
    from rich.console import Console

    from edgeseg.bench import bench_models
    from edgeseg.bench.render import rich_table, write_json, write_markdown, write_plot
    from edgeseg.errors import InputError
    from edgeseg.fileio import check_writable

    if runs is not None and seconds is not None:
        raise InputError("give --runs or --seconds, not both")
    if runs is None and seconds is None:
        runs = 50
    for target in (json_path, markdown, plot):
        if target is not None:
            check_writable(target, force)
    sizes = parse_sizes(size or ["512x512"])
    batches = parse_ints(batch, "--batch")
    thread_counts = parse_ints(threads, "--threads") if threads else [default_threads()]
    providers = list(dict.fromkeys(p.strip().lower() for p in provider.split(",") if p.strip()))
    err = Console(stderr=True)
    results, notes = bench_models(
        models,
        sizes,
        batches,
        thread_counts,
        providers,
        warmup=warmup,
        runs=runs,
        seconds=seconds,
        with_onnx=onnx,
        interleave=not sequential,
        progress=lambda line: err.print(f"[dim]{line}[/dim]"),
    )
    for note in notes:
        err.print(f"note: {note}")
    out = Console()
    if out.is_terminal:  # leave out the least needed columns rather than wrap or cut cells
        out.print(rich_table(results, out.width))
    else:  # piped or captured: rich would squeeze the table into 80 columns
        Console(width=200).print(rich_table(results))
    settings = {"warmup": warmup, "runs": runs, "seconds": seconds, "interleave": not sequential}
    if json_path is not None:
        write_json(json_path, results, settings)
    if markdown is not None:
        write_markdown(markdown, results)
    if plot is not None:
        write_plot(plot, results)


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the application."""
    app.command("bench")(bench)
