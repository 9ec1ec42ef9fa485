"""Rich rendering for the command line: live progress, run summaries, run listings."""

from __future__ import annotations

from typing import Any

import anyio
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ._journal import CheckResultRow, RunEventRow, RunRow
from ._runner import RunResult
from ._stats import RunStats

STATUS_STYLE = {
    "ok": "green",
    "partial": "yellow",
    "failed": "red",
    "timed_out": "red",
    "interrupted": "magenta",
    "running": "cyan",
}


class LiveProgress:
    """A progress bar per fan-out stage and a counter per store, redrawn from RunStats."""

    def __init__(self, console: Console, stats: RunStats) -> None:
        self.stats = stats
        self.progress = Progress(
            TextColumn("[bold]{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def _update(self) -> None:
        for name, stage in self.stats.stages.items():
            if stage.kind not in ("fetch", "store"):
                continue
            if name not in self._tasks:
                self._tasks[name] = self.progress.add_task(name, total=stage.planned, detail="")
            if stage.kind == "fetch":
                detail = f"{stage.records_out} records"
                if stage.failed:
                    detail += f", [red]{stage.failed} failed[/red]"
                total = (
                    stage.planned
                    if stage.planned is not None
                    else (None if not stage.finished else stage.done)
                )
                self.progress.update(
                    self._tasks[name], completed=stage.done, total=total, detail=detail
                )
            else:
                self.progress.update(
                    self._tasks[name],
                    completed=stage.records_out,
                    total=stage.records_out if stage.finished else None,
                    detail="rows stored",
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


def summary_table(result: RunResult) -> Table:
    run = result.run
    duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
    style = STATUS_STYLE.get(run.status, "white")
    table = Table(
        title=(
            f"{run.pipeline} · run {run.id[:8]} · "
            f"[{style}]{run.status}[/{style}] in {duration:.2f}s"
        ),
        title_justify="left",
    )
    for column in ("stage", "kind", "in", "out", "requests", "failed", "rejected"):
        table.add_column(column, justify="left" if column in ("stage", "kind") else "right")
    for name, stage in result.stats.stages.items():
        table.add_row(
            name,
            stage.kind,
            str(stage.records_in) if stage.kind != "fetch" or stage.records_in else "",
            str(stage.records_out),
            str(stage.requests) if stage.kind == "fetch" else "",
            _warn(stage.failed),
            _warn(stage.rejected),
        )
    table.caption = (
        f"{run.requests} requests ({run.retries} retries, {run.failed_requests} failed) · "
        f"{run.records_in} records in · {run.stored} rows stored · "
        f"{run.checks_failed} checks failed"
    )
    table.caption_justify = "left"
    return table


def checks_table(checks: list[CheckResultRow]) -> Table | None:
    if not checks:
        return None
    table = Table(title="checks", title_justify="left")
    for column in ("check", "on", "expect", "passed", "failed", "result"):
        table.add_column(column)
    for c in checks:
        result = (
            "[green]ok[/green]"
            if c.ok
            else ("[red]FAILED[/red]" if c.severity == "error" else "[yellow]warn[/yellow]")
        )
        table.add_row(c.name, c.target, c.expect, str(c.passed), str(c.failed), result)
    return table


def events_table(events: list[RunEventRow], limit: int = 10) -> Table | None:
    if not events:
        return None
    table = Table(title=f"events ({len(events)})", title_justify="left")
    for column in ("stage", "kind", "message"):
        table.add_column(column, overflow="fold")
    for e in events[:limit]:
        table.add_row(e.stage or "", e.kind, e.message)
    return table


def runs_table(runs: list[RunRow]) -> Table:
    table = Table(title="runs", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("pipeline", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    for column in ("secs", "reqs", "stored"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("error", overflow="fold")
    for run in runs:
        style = STATUS_STYLE.get(run.status, "white")
        seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
        table.add_row(
            run.id[:8],
            run.pipeline,
            f"[{style}]{run.status}[/{style}]",
            run.started_at.strftime("%m-%d %H:%M:%S"),
            f"{seconds:.1f}" if seconds is not None else "",
            str(run.requests),
            str(run.stored),
            run.error or "",
        )
    return table


def _warn(n: int) -> str:
    return f"[red]{n}[/red]" if n else "0"


def result_json(result: RunResult) -> dict[str, Any]:
    run = result.run
    return {
        "run_id": run.id,
        "pipeline": run.pipeline,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "requests": run.requests,
        "retries": run.retries,
        "failed_requests": run.failed_requests,
        "records_in": run.records_in,
        "records_out": run.records_out,
        "rejected": run.rejected,
        "stored": run.stored,
        "checks_failed": run.checks_failed,
        "error": run.error,
        "stages": run.stages,
        "checks": [
            {"check": c.name, "on": c.target, "passed": c.passed, "failed": c.failed, "ok": c.ok}
            for c in result.checks
        ],
    }
