"""``edgeseg predict``: segment images with an exported model and write palette PNG masks (and overlays)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def predict(
    model: Annotated[Path, typer.Argument(help="ONNX model written by `edgeseg export`.")],
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders of images (recursive).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the masks.")],
    overlay: Annotated[
        bool, typer.Option("--overlay", help="Also write NAME_overlay.png: mask over image, legend below.")
    ] = False,
    alpha: Annotated[float, typer.Option(help="Mask opacity in overlays, 0..1.")] = 0.5,
    provider: Annotated[str, typer.Option(help="auto, cpu, cuda or tensorrt.")] = "auto",
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads.")] = None,
    tile_size: Annotated[
        int | None, typer.Option(help="Segment images whose longer side exceeds this in tiles of this side.")
    ] = None,
    tile_overlap: Annotated[float, typer.Option(help="Tile overlap as a fraction of the tile.")] = 0.25,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
) -> None:
    """Segment images into palette PNG masks named after the inputs.

    Images that cannot be read are reported by name; the others are still written, and the command then
    exits with code 1.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edgeseg.errors import EdgesegError
    from edgeseg.runtime import Segmenter
    from edgeseg.runtime.files import plan_outputs, segment_files

    err = Console(stderr=True)
    jobs = plan_outputs(inputs, output, overlay, force)
    segmenter = Segmenter(
        model, provider=provider, threads=threads, tile_size=tile_size, tile_overlap=tile_overlap
    )
    err.print(segmenter.describe())
    columns = (TextColumn("segmenting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("predict", total=len(jobs))

        def done(job: object, error: str | None) -> None:
            if error is not None:
                progress.console.print(f"[red]skipped[/red] {error}")
            progress.advance(task)

        report = segment_files(segmenter, jobs, alpha=alpha, on_done=done)
    typer.echo(f"wrote {len(report.written)} files to {output}")
    if report.failed:
        names = ", ".join(str(p) for p in report.failed)
        raise EdgesegError(f"{len(report.failed)} of {len(jobs)} images could not be segmented: {names}")


def register(app: typer.Typer) -> None:
    """Add ``predict`` to the application."""
    app.command("predict")(predict)
