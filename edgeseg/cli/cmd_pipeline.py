"""``edgeseg pipeline``: the main job, from data to a validated, benchmarked edge model and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def pipeline_command(
    recipe: Annotated[Path, typer.Argument(help="Pipeline recipe (YAML), e.g. recipes/quickstart.yaml.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Output folder (default: runs/RECIPE_NAME).")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key, e.g. --set teacher.train.epochs=2 (repeatable)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Redo stages whose settings or inputs changed since a run in OUT_DIR."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No training progress bars.")] = False,
) -> None:
    """Train the teacher (or reuse a checkpoint), the student alone and the distilled student; export all
    three to ONNX behind the parity gate; quantize the distilled student to INT8 behind the accuracy gate;
    evaluate and benchmark every model file; write report.md, report.json and figures to OUT_DIR.

    A rerun resumes: finished stages are reused, a killed training continues from its last.pt. When the INT8
    gate fails, the report has no INT8 row and says why; the exit code is 0 unless quantize.required is true
    (then 1, after the report is written).
    """
    from rich.console import Console

    from edgeseg.bench.render import console_table
    from edgeseg.pipeline import load_pipeline_recipe, run_pipeline

    spec = load_pipeline_recipe(recipe, list(overrides or []))
    out_dir = Path(output) if output is not None else Path("runs") / Path(recipe).stem
    console = Console()
    result = run_pipeline(spec, out_dir, force=force, progress=not quiet, console=console)
    rows = [
        [
            m["label"],
            f"{100 * m['miou']:.2f}",
            f"{100 * m['pixel_acc']:.2f}",
            f"{m['params'] / 1e6:.3f}",
            f"{m['gflops']:.3f}",
            "–" if m["latency"]["p50_ms"] is None else f"{m['latency']['p50_ms']:.2f}",
            "–" if m["latency"]["throughput_ips"] is None else f"{m['latency']['throughput_ips']:.1f}",
        ]
        for m in result.report["models"].values()
    ]
    headers = ["model", "mIoU\n%", "pixel\nacc. %", "params\n(M)", "GFLOPs", "p50\nms", "img/s"]
    table = console_table(f"edgeseg pipeline: {out_dir}", headers, rows)
    console.print(table)
    if result.int8_passed is False:
        console.print("[yellow]INT8: the accuracy gate refused the quantized model (see the report)[/]")
    console.print(f"report: {result.report_md}  ({result.report_json}, figures in {out_dir / 'figures'})")


def register(app: typer.Typer) -> None:
    """Add ``edgeseg pipeline`` to ``app``."""
    app.command("pipeline")(pipeline_command)
