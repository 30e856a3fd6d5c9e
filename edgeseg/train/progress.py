"""Rich progress bars for training: one bar per epoch showing the running loss and images per second."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """Progress display of the main process; ``enabled=False`` (other ranks, quiet runs) prints nothing."""

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console()
        self._progress: Progress | None = None
        self._task: int | None = None

    def log(self, message: str) -> None:
        """Print one line above the bars."""
        if self.enabled:
            self.console.print(message, highlight=False, markup=False)

    def start_epoch(self, epoch: int, epochs: int, total: int, completed: int = 0) -> None:
        """Open the bar of ``epoch`` (1-based): ``total`` iterations, ``completed`` of them already done."""
        if not self.enabled:
            return
        self._progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[ips]:.1f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=total, completed=completed, loss=0.0, ips=0.0)

    def update(self, loss: float, images_per_s: float) -> None:
        """Advance the bar by one iteration."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1, loss=loss, ips=images_per_s)

    def end_epoch(self) -> None:
        """Close the current bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
