"""``podium daemon``, ``reload`` and ``status``: the scheduler's commands.

``jobs`` (and with it the scheduler library) is imported inside each command, so the
other commands never load it.
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated, Any

import typer

from ._app import DEFAULT_CONFIG, ConfigOption, app, console, user_errors


@app.command()
@user_errors
def daemon(
    config: ConfigOption = DEFAULT_CONFIG,
    node_id: Annotated[
        str | None, typer.Option("--node-id", help="this node's id (default: host name)")
    ] = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="log JSON lines to stderr")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Fire scheduled pipelines until SIGTERM; SIGHUP (or `podium reload`) re-reads the config."""
    import anyio

    from podium.jobs import run_daemon  # the scheduler is imported by this command only
    from podium.orchestrator import configure_logging

    configure_logging(level="DEBUG" if verbose else "INFO", json=log_json, replace_default=True)
    code = anyio.run(functools.partial(run_daemon, config, node_id=node_id), backend="asyncio")
    raise typer.Exit(code)


@app.command()
@user_errors
def reload(
    config: ConfigOption = DEFAULT_CONFIG,
    node_id: Annotated[str | None, typer.Option("--node-id", help="only this node")] = None,
) -> None:
    """Make running daemons re-read the config; reports each node's answer."""
    from podium.jobs import config_token, reload_daemons

    for info in reload_daemons(config, node_id, config_token(config)):
        typer.echo(f"reloaded node {info['node_id']} (pid {info['pid']})")


@app.command()
@user_errors
def status(
    config: ConfigOption = DEFAULT_CONFIG,
    node_id: Annotated[str | None, typer.Option("--node-id", help="only this node")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print /status as JSON")] = False,
) -> None:
    """Show running daemons: schedules, next fire, last run and its outcome."""
    import anyio
    import orjson

    from podium.jobs import fetch_statuses

    statuses = anyio.run(functools.partial(fetch_statuses, config, node_id), backend="asyncio")
    if as_json:
        sys.stdout.write(orjson.dumps(statuses, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    from rich.table import Table
    from rich.text import Text

    out = console()
    for doc in statuses:
        title = Text(f"node {doc['node_id']} (pid {doc['pid']}, {doc['mode']} store)")
        table = Table(title=title, title_justify="left")
        columns = ("pipeline", "schedule", "paused", "next fire", "running", "last run", "outcome")
        for column in columns:
            table.add_column(column, overflow="fold")
        for p in doc["pipelines"]:
            last = p["last_run"] or {}
            table.add_row(
                Text(p["name"]),
                Text(p["schedule"]),
                Text(_paused(p)),
                Text("-" if p.get("paused") else p["next_fire"] or "-"),
                str(p["running"]),
                Text(last.get("started_at") or "-"),
                Text(last.get("status") or "-"),
            )
        out.print(table)


def _paused(pipeline: dict[str, Any]) -> str:
    """ "-", or "yes" with the reason a person gave."""
    if not pipeline.get("paused"):
        return "-"
    reason = pipeline.get("paused_reason")
    return f"yes: {reason}" if reason else "yes"
