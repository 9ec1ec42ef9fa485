"""``podium runs`` and ``podium show``: what the journal recorded."""

from __future__ import annotations

import functools
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from ._app import DEFAULT_CONFIG, ConfigOption, app, console, user_errors


async def _journal_call(database_url: str, method: str, *args: Any, **kwargs: Any) -> Any:
    from podium.orchestrator import Journal, open_database

    async with open_database(database_url) as database:
        return await getattr(Journal(database), method)(*args, **kwargs)


def parse_since(text: str) -> datetime:
    """``--since``: a duration back from now (``90m``, ``2d``) or a time (ISO 8601; a time
    without a zone is UTC)."""
    from podium.pipeline import ConfigError, parse_duration

    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since expects a duration (e.g. 2h, 7d) or a time (e.g. 2026-12-01T08:00Z), "
            f"got {text!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@app.command()
@user_errors
def runs(
    pipeline: Annotated[str | None, typer.Argument(help="only this pipeline's runs")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    limit: Annotated[int, typer.Option(help="how many runs", min=1)] = 20,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="only runs that ended so (repeatable): ok, failed, …"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="only runs started since: a duration (2h) or a time")
    ] = None,
    trigger: Annotated[
        str | None,
        typer.Option(
            help="only runs started so: schedule, catch_up, backfill, manual, api, cli, "
            "python or replay"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the runs as JSON")] = False,
) -> None:
    """List recent runs, newest first."""
    import anyio

    from podium.orchestrator.config import load_config
    from podium.orchestrator.storage import RUN_STATUSES, RUN_TRIGGERS
    from podium.pipeline import ConfigError

    from ._display import runs_listing

    statuses = tuple(status or ())
    unknown = sorted(set(statuses) - set(RUN_STATUSES))
    if unknown:
        raise ConfigError(
            f"--status {', '.join(unknown)} is not a run status ({', '.join(RUN_STATUSES)})"
        )
    if trigger is not None and trigger not in RUN_TRIGGERS:
        raise ConfigError(f"--trigger {trigger} is not a trigger ({', '.join(RUN_TRIGGERS)})")
    after = parse_since(since) if since is not None else None
    loaded = load_config(config)
    query = functools.partial(
        _journal_call, loaded.database.url, "runs", pipeline, limit,
        statuses=statuses, since=after, trigger=trigger,
    )  # fmt: skip
    found = anyio.run(query, backend="asyncio")
    if not found and pipeline is not None and pipeline not in loaded.pipelines:
        loaded.pipeline(pipeline)  # in neither the journal nor the config: a typo; raises
    if as_json:
        import orjson

        rows = [r.model_dump(mode="json") for r in found]
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    filtered = pipeline is not None or bool(statuses) or since is not None or trigger is not None
    console().print(runs_listing(found, where=loaded.database.url, filtered=filtered))


@app.command()
@user_errors
def show(
    run_id: Annotated[str, typer.Argument(help="run id or a unique prefix of it")],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """Show one run: counts per stage, checks and recorded failures."""
    import anyio
    import orjson

    from podium.orchestrator.config import load_config

    from ._display import run_report

    loaded = load_config(config)

    async def fetch() -> Any:
        from podium.orchestrator import Journal, open_database

        async with open_database(loaded.database.url) as db:
            journal = Journal(db, lease=loaded.journal.lease)
            run, events, checks = await journal.run(run_id)
            steps = await journal.steps(run.id)
            letters = await journal.dead_letters(run.id, limit=100_000)
            return run, events, checks, steps, letters

    run, events, checks, steps, letters = anyio.run(fetch, backend="asyncio")
    if as_json:
        data = {
            "run": run.model_dump(mode="json"),
            "checks": [c.model_dump(mode="json") for c in checks],
            "events": [e.model_dump(mode="json") for e in events],
            "side_effects": [s.model_dump(mode="json") for s in steps],
            "dead_letters": len(letters),
        }
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    out = console()
    parts = run_report(run, checks, events, events_limit=50, steps=steps, dead_letters=len(letters))
    for part in parts:
        out.print(part)
