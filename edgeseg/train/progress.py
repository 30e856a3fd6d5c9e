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
    """Progress display of the main process: bars when ``bars`` is true, and log lines.

    Use it on the main process only (other ranks print nothing). Without ``bars`` (``--quiet``, logs
    captured to files) only the log lines appear.
    """

    def __init__(self, bars: bool = True, console: Console | None = None) -> None:
        self.bars = bars
        self.console = console or Console()
        self._progress: Progress | None = None
        self._task: int | None = None

    def log(self, message: str) -> None:
        """Print one line (above the bars while they run)."""
        self.console.print(message, highlight=False, markup=False)

    def start_epoch(self, epoch: int, epochs: int, total: int, completed: int = 0) -> None:
        """Open the bar of ``epoch`` (1-based): ``total`` iterations, ``completed`` of them already done."""
        if not self.bars:
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
