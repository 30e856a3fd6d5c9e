"""Options and the run-folder step shared by the commands that train into a run folder (train, distill,
pretrain): each command keeps its own recipe argument and docstring, and hands its job to :func:`run_job`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

Output = Annotated[
    Path | None, typer.Option("-o", "--output", help="Run folder (default: runs/RECIPE_NAME).")
]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe key, e.g. --set train.epochs=1 (repeatable)."),
]
Resume = Annotated[
    Path | None,
    typer.Option("--resume", help="Continue the run in this folder from its last.pt (no RECIPE needed)."),
]
Force = Annotated[bool, typer.Option("--force", help="Start again in a folder that holds a run.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def run_job(
    recipe: Path | None,
    output: Path | None,
    resume: Path | None,
    overrides: list[str] | None,
    *,
    load: Callable[..., Any],
    load_resumed: Callable[..., Any],
    job: Callable[..., Any],
    force: bool,
    quiet: bool,
) -> Any | None:
    """Resolve the recipe and run folder (``edgeseg.train.rundir.resolve_run``), say how it was resolved, run
    ``job(cfg, run_dir, resume=, force=, progress=)``; returns its result on rank 0 and None on other ranks,
    which print nothing."""
    from edgeseg.train.distributed import is_main_process
    from edgeseg.train.rundir import resolve_run

    cfg, run_dir, note = resolve_run(
        recipe, output, resume, list(overrides or []), load=load, load_resumed=load_resumed
    )
    if note:
        typer.echo(note, err=True)
    result = job(cfg, run_dir, resume=resume is not None, force=force, progress=not quiet)
    return result if is_main_process() else None
