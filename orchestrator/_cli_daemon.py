"""``podium daemon``, ``reload`` and ``status``: the scheduler's commands.

``jobs`` (and with it the scheduler library) is imported inside each command, so the
other commands never load it.
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated

import anyio
import orjson
import typer

from ._cli_app import DEFAULT_CONFIG, ConfigOption, _console, app, user_errors
from ._logging import configure_logging


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
    from jobs import run_daemon  # the scheduler is imported by this command only

    configure_logging(level="DEBUG" if verbose else "INFO", json=log_json)
    code = anyio.run(functools.partial(run_daemon, config, node_id=node_id), backend="asyncio")
    raise typer.Exit(code)


@app.command()
@user_errors
def reload(
    config: ConfigOption = DEFAULT_CONFIG,
    node_id: Annotated[str | None, typer.Option("--node-id", help="only this node")] = None,
) -> None:
    """Make running daemons re-read the config; reports each node's answer."""
    from jobs import reload_daemons

    for info in reload_daemons(config, node_id):
        typer.echo(f"reloaded node {info['node_id']} (pid {info['pid']})")


@app.command()
@user_errors
def status(
    config: ConfigOption = DEFAULT_CONFIG,
    node_id: Annotated[str | None, typer.Option("--node-id", help="only this node")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print /status as JSON")] = False,
) -> None:
    """Show running daemons: schedules, next fire, last run and its outcome."""
    from jobs import fetch_statuses

    statuses = anyio.run(functools.partial(fetch_statuses, config, node_id), backend="asyncio")
    if as_json:
        sys.stdout.write(orjson.dumps(statuses, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    from rich.table import Table

    console = _console()
    for doc in statuses:
        title = f"node {doc['node_id']} (pid {doc['pid']}, {doc['mode']} store)"
        table = Table(title=title, title_justify="left")
        for column in ("pipeline", "schedule", "next fire", "running", "last run", "outcome"):
            table.add_column(column, overflow="fold")
        for p in doc["pipelines"]:
            last = p["last_run"] or {}
            table.add_row(
                p["name"],
                p["schedule"],
                p["next_fire"] or "-",
                str(p["running"]),
                last.get("started_at") or "-",
                last.get("status") or "-",
            )
        console.print(table)
