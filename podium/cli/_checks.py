"""``podium checks``: each check's state, uptime and response times, from the journal."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import DEFAULT_CONFIG, ConfigOption, app, console, user_errors

if TYPE_CHECKING:
    from rich.table import Table

    from podium.orchestrator.alerts import CheckSummary


@app.command()
@user_errors
def checks(
    pipeline: Annotated[str | None, typer.Argument(help="only this pipeline's checks")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="print the summaries as JSON")] = False,
) -> None:
    """Show every check's state, since when, uptime over 24h/7d/30d, p50/p95 response
    time over 24h, and its last failure with the cause."""
    import anyio

    from podium.orchestrator.alerts import WINDOWS, summarise, window_start
    from podium.orchestrator.config import load_config

    loaded = load_config(config)
    if pipeline is not None:
        loaded.pipeline(pipeline)  # a misspelt name is an error, not an empty table
    now = datetime.now(UTC)

    async def fetch() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from podium.orchestrator import open_database
        from podium.orchestrator.storage import Monitoring

        async with open_database(loaded.database.url) as db:
            monitoring = Monitoring(db)
            status = await monitoring.check_status(pipeline)
            hours = await monitoring.check_hours(pipeline, window_start(now, max(WINDOWS.values())))
            return status, hours

    status, hours = anyio.run(fetch, backend="asyncio")
    summaries = summarise(status, hours, now)
    if as_json:
        import orjson

        data = [s.as_json() for s in summaries]
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not summaries:
        which = f"pipeline {pipeline!r}" if pipeline else loaded.database.url
        console().print(f"no check results yet for {which}", markup=False, highlight=False)
        return
    console().print(_table(summaries, now, monitors=loaded.monitors))


def _table(summaries: list[CheckSummary], now: datetime, monitors: set[str]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="checks", title_justify="left")
    for column in ("check", "state", "since", "24h", "7d", "30d", "p50", "p95", "last failure"):
        table.add_column(
            column, justify="right" if column in ("24h", "7d", "30d", "p50", "p95") else "left"
        )
    for s in summaries:
        name = f"{s.pipeline} (monitor)" if s.pipeline in monitors else f"{s.pipeline}/{s.name}"
        state = Text("passing", style="green") if s.ok else Text("failing", style="red")
        failure = Text("")
        if s.last_failure_at is not None:
            failure = Text(f"{_ago(now, s.last_failure_at)}: {s.last_failure_cause or '?'}")
        table.add_row(
            Text(name),
            state,
            Text(_ago(now, s.since)),
            *(_uptime(s.windows[w].uptime) for w in ("24h", "7d", "30d")),
            Text(_ms(s.p50_ms)),
            Text(_ms(s.p95_ms)),
            failure,
        )
    table.caption = Text("uptime: share of runs that passed, in whole hours up to now")
    table.caption_justify = "left"
    return table


def _uptime(ratio: float | None) -> Any:
    from rich.text import Text

    if ratio is None:
        return Text("–")
    style = "green" if ratio >= 0.999 else "yellow" if ratio >= 0.99 else "red"
    return Text(f"{ratio * 100:.2f}%", style=style)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def _ago(now: datetime, then: datetime) -> str:
    seconds = max(0.0, (now - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"
