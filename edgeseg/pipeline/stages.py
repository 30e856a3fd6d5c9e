"""Stages of the pipeline: done-markers ``OUT_DIR/stages/<stage>.json`` that make it resumable, and banners.

A stage writes its marker atomically after all its outputs, with a fingerprint of everything it depended on
(its settings and the hashes of its input files) and its results. A rerun skips a stage whose marker has the
same fingerprint and whose outputs all exist, and takes its results from the marker. A marker with another
fingerprint means the recipe or an input changed: redoing that stage would overwrite its outputs, which
needs ``--force``. :class:`PipelineUI` prints a banner per stage (or one line for a reused one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import InputError
from edgeseg.fileio import write_text_atomic

STAGES_DIR = "stages"


@dataclass
class StageRecord:
    """A finished stage: what it depended on, what it wrote (paths relative to the output folder), results."""

    name: str
    fingerprint: str
    outputs: list[str]
    results: dict[str, Any]
    seconds: float
    finished_at: str

    def to_dict(self) -> dict[str, Any]:
        """The marker file's JSON content."""
        return {
            "stage": self.name,
            "fingerprint": self.fingerprint,
            "outputs": self.outputs,
            "results": self.results,
            "seconds": self.seconds,
            "finished_at": self.finished_at,
        }


class StageBook:
    """The done-markers of one output folder."""

    def __init__(self, out_dir: Path, force: bool) -> None:
        self.out_dir = out_dir
        self.folder = out_dir / STAGES_DIR
        self.force = force

    def path(self, name: str) -> Path:
        """The marker file of stage ``name``."""
        return self.folder / f"{name}.json"

    def read(self, name: str) -> StageRecord | None:
        """The marker of ``name`` (None when absent); a corrupt marker is an error naming the file."""
        path = self.path(name)
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
            return StageRecord(
                name=raw["stage"],
                fingerprint=raw["fingerprint"],
                outputs=list(raw["outputs"]),
                results=dict(raw["results"]),
                seconds=float(raw["seconds"]),
                finished_at=raw["finished_at"],
            )
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(
                f"{path} is not a pipeline stage marker ({err}); delete it to redo the stage"
            ) from err

    def completed(self, name: str, fingerprint: str) -> StageRecord | None:
        """The marker of ``name`` when the stage is complete for ``fingerprint``, else None.

        A stage done with another fingerprint is refused unless ``force`` (then it is redone).
        """
        record = self.read(name)
        if record is None:
            return None
        missing = [o for o in record.outputs if not (self.out_dir / o).exists()]
        if record.fingerprint == fingerprint and not missing:
            return record
        if self.force:
            return None
        why = (
            f"its outputs are missing ({', '.join(missing)})"
            if missing
            else ("it was done with other settings or inputs")
        )
        raise InputError(
            f"{self.out_dir}: stage '{name}' cannot be reused: {why}; pass --force to redo it "
            "(and the stages that depend on it), or choose another output folder"
        )

    def save(
        self,
        name: str,
        fingerprint: str,
        outputs: Iterable[str | Path],
        results: dict[str, Any],
        seconds: float,
    ) -> StageRecord:
        """Write the marker of a finished stage (call after its outputs are in place)."""
        rel = [self._relative(Path(o)) for o in outputs]
        record = StageRecord(
            name=name,
            fingerprint=fingerprint,
            outputs=rel,
            results=results,
            seconds=round(seconds, 3),
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        write_text_atomic(self.path(name), json.dumps(record.to_dict(), indent=2, allow_nan=False) + "\n")
        return record

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.out_dir))
        except ValueError:
            return str(path)

    def forget(self, name: str) -> None:
        """Before redoing stage ``name``: remove its marker, then the files it wrote, so that neither a crash
        nor a stage that now writes less (an INT8 gate that fails) leaves stale outputs behind."""
        record = self.read(name)
        self.path(name).unlink(missing_ok=True)
        for output in record.outputs if record is not None else []:
            path = self.out_dir / output
            if path.is_file():
                path.unlink()


class PipelineUI:
    """Stage banners and log lines on a rich console."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console()

    def banner(self, index: int, total: int, title: str) -> None:
        """A rule announcing stage ``index`` of ``total``."""
        self.console.rule(f"[bold cyan]stage {index}/{total}[/] · {title}", align="left")

    def skipped(self, index: int, total: int, title: str, seconds: float) -> None:
        """One dim line for a stage reused from an earlier run."""
        self.console.print(f"[dim]stage {index}/{total} · {title}: done earlier ({seconds:.0f} s), reused[/]")

    def log(self, message: str) -> None:
        """One plain log line."""
        self.console.print(message, highlight=False, markup=False)
