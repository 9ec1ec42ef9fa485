"""Rich rendering for the command line: run reports and run listings.

Everything that comes from data — pipeline and stage names, URLs, error messages, check
expressions — reaches Rich as ``Text``, never as a markup string: ``?filter[status]=open``
prints as written, and a ``[`` in an error cannot crash the renderer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from podium.orchestrator import CheckResultRow, Config, RunEventRow, RunResult, RunRow
    from podium.orchestrator.storage import DeadLetterRow, SagaStepRow

STATUS_STYLE = {
    "ok": "green",
    "partial": "yellow",
    "failed": "red",
    "timed_out": "red",
    "interrupted": "magenta",
    "cancelled": "magenta",
    "running": "cyan",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, "white"))


def _duration(run: RunRow) -> float | None:
    return (run.finished_at - run.started_at).total_seconds() if run.finished_at else None


def _count(n: Any, *, warn: bool = False) -> Text:
    if n in (None, ""):
        return Text("")
    return Text(str(n), style="red" if warn and n else "")


def stage_table(run: RunRow) -> Table:
    """The run's stages with their counts, titled with its outcome (``run`` and ``show``)."""
    seconds = _duration(run)
    title = Text.assemble(
        run.pipeline,
        " · run ",
        run.id[:8],
        " · ",
        status_text(run.status),
        f" in {seconds:.2f}s" if seconds is not None else "",
        (" · dry run: nothing stored", "yellow") if run.dry_run else "",
    )
    table = Table(title=title, title_justify="left")
    for column in ("stage", "kind", "in", "out", "requests", "failed", "rejected"):
        table.add_column(column, justify="left" if column in ("stage", "kind") else "right")
    for name, stage in run.stages.items():
        kind = stage.get("kind", "")
        table.add_row(
            Text(name),
            Text(kind),
            _count(stage.get("in")) if kind != "fetch" or stage.get("in") else Text(""),
            _count(stage.get("out")),
            _count(stage.get("requests")) if kind == "fetch" else Text(""),
            _count(stage.get("failed", 0), warn=True),
            _count(stage.get("rejected", 0), warn=True),
        )
    stored = "nothing stored (dry run)" if run.dry_run else f"{run.stored} rows stored"
    table.caption = Text(
        f"{run.requests} requests ({run.retries} retries, {run.failed_requests} failed) · "
        f"{run.records_in} records in · {stored} · {run.checks_failed} checks failed"
    )
    table.caption_justify = "left"
    return table


def checks_table(checks: list[CheckResultRow]) -> Table | None:
    if not checks:
        return None
    table = Table(title="checks", title_justify="left")
    for column in ("check", "on", "expect", "passed", "failed", "result"):
        table.add_column(column, overflow="fold")
    for c in checks:
        if c.ok:
            result = Text("ok", style="green")
        else:
            result = (
                Text("FAILED", style="red") if c.severity == "error" else Text("warn", "yellow")
            )
        table.add_row(
            Text(c.name), Text(c.target), Text(c.expect), str(c.passed), str(c.failed), result
        )
    return table


def events_table(events: list[RunEventRow], limit: int = 10) -> Table | None:
    if not events:
        return None
    shown = f"first {limit} of {len(events)}" if len(events) > limit else str(len(events))
    table = Table(title=f"events ({shown})", title_justify="left")
    for column in ("stage", "kind", "message"):
        table.add_column(column, overflow="fold")
    for e in events[:limit]:
        table.add_row(Text(e.stage or ""), Text(e.kind), Text(e.message))
    return table


def run_report(
    run: RunRow,
    checks: list[CheckResultRow],
    events: list[RunEventRow],
    *,
    events_limit: int = 10,
    steps: list[SagaStepRow] | None = None,
    dead_letters: int = 0,
) -> list[RenderableType]:
    """What ``podium run`` prints at the end and ``podium show`` prints for a past run."""
    parts: list[RenderableType] = [stage_table(run)]
    tables = (
        attempts_table(run),
        checks_table(checks),
        steps_table(steps or []),
        events_table(events, events_limit),
    )
    parts.extend(table for table in tables if table is not None)
    if dead_letters:
        parts.append(
            Text(f"{dead_letters} dead letter(s): podium dead-letters {run.id[:8]}", style="yellow")
        )
    if run.error:
        parts.append(Text.assemble(("error: ", "red"), run.error))
    return parts


def attempts_table(run: RunRow) -> Table | None:
    """A resumed run's earlier attempts: who ran each, until when, and why it ended."""
    if not run.attempts:
        return None
    table = Table(title=f"attempts ({run.attempt})", title_justify="left")
    for column in ("attempt", "node", "from", "to", "requests", "stored", "ended"):
        table.add_column(column, overflow="fold")
    for a in run.attempts:
        started, ended = str(a.get("started_at"))[:19], str(a.get("ended_at"))[:19]
        table.add_row(
            str(a.get("attempt")), Text(str(a.get("node") or "")), Text(started), Text(ended),
            str(a.get("requests", "")), str(a.get("stored", "")), Text(str(a.get("cause") or "")),
        )  # fmt: skip
    table.add_row(str(run.attempt), Text(run.node or ""), "", "", "", "", status_text(run.status))
    return table


def steps_table(steps: list[SagaStepRow]) -> Table | None:
    """The side effects a run performed, and how each was undone (or not)."""
    if not steps:
        return None
    table = Table(title=f"side effects ({len(steps)})", title_justify="left")
    for column in ("seq", "stage", "item", "undone by", "state"):
        table.add_column(column, overflow="fold")
    for s in steps:
        spec = s.compensation
        undo = f"{spec.get('method', '')} {spec.get('path', '')}".strip() or spec.get("error", "")
        state = {"done": "kept", "compensated": "undone", "failed": "NOT undone"}.get(
            s.status, s.status
        )
        style = "red" if s.status == "failed" else "green" if s.status == "compensated" else ""
        label = Text(state + (f": {s.error}" if s.error else ""), style=style)
        table.add_row(str(s.seq), Text(s.stage), Text(s.item), Text(undo), label)
    return table


def dead_letters_table(letters: list[DeadLetterRow], *, where: str) -> RenderableType:
    if not letters:
        return Text(f"no dead letters in {where}")
    table = Table(title=f"dead letters ({len(letters)})", title_justify="left")
    for column in ("run", "stage", "kind", "item", "cause", "request / record", "replayed"):
        table.add_column(column, overflow="fold")
    for d in letters:
        what = d.request or d.record or {}
        shown = (
            f"{what.get('method', '')} {what.get('url', '')}".strip() if d.request else str(what)
        )
        table.add_row(
            d.run_id[:8], Text(d.stage), d.kind, Text(str(d.item or "")), Text(d.cause),
            Text(shown), (d.replayed_in or "")[:8],
        )  # fmt: skip
    return table


def runs_listing(runs: list[RunRow], *, where: str, filtered: bool = False) -> RenderableType:
    """Recent runs, one line each; a run's error on its own line below it, so the listing
    reads at any terminal width (a table column would squeeze it to a few characters)."""
    if not runs and filtered:
        return Text(f"no runs match in {where}")
    if not runs:
        return Text(f"no runs recorded in {where} yet (start one with: podium run PIPELINE)")
    rows = []
    for run in runs:
        seconds = _duration(run)
        rows.append(
            (
                run.id[:8],
                run.pipeline,
                run.status + (" (dry)" if run.dry_run else ""),
                run.started_at.strftime("%m-%d %H:%M:%S"),
                f"{seconds:.1f}" if seconds is not None else "",
                str(run.requests),
                str(run.stored),
            )
        )
    header = ("id", "pipeline", "status", "started (UTC)", "secs", "reqs", "stored")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    widths[1] = min(widths[1], 24)
    right = {4, 5, 6}

    def line(cells: tuple[str, ...], style: str = "") -> Text:
        text = Text(style=style, no_wrap=True, overflow="ellipsis")
        for i, cell in enumerate(cells):
            if i:
                text.append("  ")
            shown = cell if len(cell) <= widths[i] else cell[: widths[i] - 1] + "…"
            padded = shown.rjust(widths[i]) if i in right else shown.ljust(widths[i])
            text.append(padded, style=STATUS_STYLE.get(cells[2].split()[0], "") if i == 2 else "")
        return text

    lines: list[RenderableType] = [line(header, style="bold")]
    for run, cells in zip(runs, rows, strict=True):
        lines.append(line(cells))
        if run.error:
            lines.append(Text.assemble("  └ ", (run.error, "red"), overflow="fold"))
    return Group(*lines)


def pipelines_table(config: Config) -> Table:
    from podium.pipeline import PodiumError

    table = Table(title=Text(str(config.path)), title_justify="left")
    for column in ("pipeline", "stages", "connectors", "description"):
        table.add_column(column, overflow="fold")
    for name, entry in config.pipelines.items():
        if isinstance(entry, PodiumError):
            table.add_row(Text(name), Text(f"invalid: {entry}", style="red"), "", "")
            continue
        chain = " → ".join(f"{s.name}({s.kind})" for s in entry.stages)
        table.add_row(
            Text(name),
            Text(chain),
            Text(", ".join(sorted(entry.connectors()))),
            Text(entry.description),
        )
    return table


def result_json(result: RunResult, *, events_limit: int = 50) -> dict[str, Any]:
    """The ``--json`` summary of a run: counts, stages, checks, and the first events."""
    run = result.run
    return {
        "run_id": run.id,
        "pipeline": run.pipeline,
        "status": run.status,
        "dry_run": run.dry_run,
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
        "causes": run.causes,
        "recorded": result.record_error is None,
        "record_error": result.record_error,
        "skipped_requests": run.skipped_requests,
        "stages": run.stages,
        "checks": [
            {"check": c.name, "on": c.target, "passed": c.passed, "failed": c.failed, "ok": c.ok}
            for c in result.checks
        ],
        "events": [
            {"stage": e.stage, "kind": e.kind, "message": e.message, "at": e.at.isoformat()}
            for e in result.events[:events_limit]
        ],
        "events_total": len(result.events),
    }
