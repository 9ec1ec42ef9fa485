"""Live progress of a run on a terminal: a bar per fan-out stage, a counter per store.

While it runs, log lines go through the display's console (``log``): Rich prints them
above the live region and redraws it below, so a warning never lands on the bar and the
last frame is never overwritten by a line written past it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console

    from podium.orchestrator import RunStats


class LiveProgress:
    """Redrawn from the run's ``RunStats`` until the run ends (its task is cancelled)."""

    def __init__(self, console: Console, stats: RunStats) -> None:
        self.stats = stats
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def log(self, message: str) -> None:
        """A loguru sink: one formatted record, printed above the live display."""
        self.progress.console.print(Text.from_ansi(message.rstrip("\n")), soft_wrap=True)

    def _update(self) -> None:
        for name, stage in self.stats.stages.items():
            if stage.kind not in ("fetch", "store"):
                continue
            if name not in self._tasks:
                label = name if len(name) <= 14 else name[:13] + "…"
                self._tasks[name] = self.progress.add_task(
                    f"{label:<14}", total=stage.planned, detail=""
                )
            task = self._tasks[name]
            if stage.kind == "fetch":
                detail = Text(f"{stage.records_out} records")
                if stage.failed:
                    detail.append(f", {stage.failed} failed", style="red")
                total = (
                    stage.planned
                    if stage.planned is not None
                    else (stage.done if stage.finished else None)
                )
                self.progress.update(task, completed=stage.done, total=total, detail=detail)
            else:
                self.progress.update(
                    task,
                    completed=stage.records_out,
                    total=stage.records_out if stage.finished else None,
                    detail=Text("rows stored"),
                )
        self.progress.refresh()

    async def run(self, interval: float = 0.15) -> None:
        """Redraw until cancelled; the caller cancels it when the run ends."""
        with self.progress:
            try:
                while True:
                    self._update()
                    await anyio.sleep(interval)
            finally:
                self._update()
