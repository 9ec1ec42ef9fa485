"""``podium runs`` and ``podium show``: what the journal recorded."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ._app import DEFAULT_CONFIG, ConfigOption, app, console, user_errors


async def _journal_call(database_url: str, method: str, *args: Any) -> Any:
    from podium.orchestrator import Journal, open_database

    async with open_database(database_url) as database:
        return await getattr(Journal(database), method)(*args)


@app.command()
@user_errors
def runs(
    pipeline: Annotated[str | None, typer.Argument(help="only this pipeline's runs")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    limit: Annotated[int, typer.Option(help="how many runs")] = 20,
) -> None:
    """List recent runs, newest first."""
    import anyio

    from podium.orchestrator.config import load_config

    from ._display import runs_listing

    loaded = load_config(config)
    found = anyio.run(
        _journal_call, loaded.database.url, "runs", pipeline, limit, backend="asyncio"
    )
    console().print(runs_listing(found, where=loaded.database.url))


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
    run, events, checks = anyio.run(
        _journal_call, loaded.database.url, "run", run_id, backend="asyncio"
    )
    if as_json:
        data = {
            "run": run.model_dump(mode="json"),
            "checks": [c.model_dump(mode="json") for c in checks],
            "events": [e.model_dump(mode="json") for e in events],
        }
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    out = console()
    for part in run_report(run, checks, events, events_limit=50):
        out.print(part)
