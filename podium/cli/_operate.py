"""``podium trigger``, ``backfill``, ``pause``, ``resume`` and ``cancel``.

``trigger`` and ``backfill`` ask a running daemon (any node of the config) over its
endpoint, with ``[scheduler] token`` — or, when none is configured, the token the daemon
keeps in its runtime file for this machine's user. ``pause``, ``resume`` and ``cancel``
write the journal directly: they need no daemon (a cancel reaches a command-line run
too), and the database's credentials are the stronger key.
"""

from __future__ import annotations

import functools
import getpass
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import (
    DEFAULT_CONFIG,
    EXIT_FAILED,
    EXIT_USAGE,
    ConfigOption,
    app,
    error,
    plain,
    user_errors,
)

if TYPE_CHECKING:
    from podium.jobs._control import DaemonCall
    from podium.orchestrator import Config

NodeOption = Annotated[
    str | None, typer.Option("--node-id", help="ask this node (default: any running one)")
]


def _ask(config: Any, path: str, body: dict[str, Any], node_id: str | None) -> DaemonCall:
    import anyio

    from podium.jobs import call_daemon, config_token

    call = anyio.run(
        functools.partial(
            call_daemon, config, path, body, token=config_token(config), node_id=node_id
        ),
        backend="asyncio",
    )
    if call.status >= 400:
        reason = str(call.answer.get("error") or f"HTTP {call.status}")
        if call.status == 401:
            reason += " — set [scheduler] token to the daemon's token (e.g. from ${PODIUM_TOKEN})"
        error(f"node {call.node_id}: {reason}")
        raise typer.Exit(EXIT_USAGE if call.status in (400, 404) else EXIT_FAILED)
    return call


@app.command()
@user_errors
def trigger(
    pipeline: Annotated[str, typer.Argument(help="pipeline to run now")],
    config: ConfigOption = DEFAULT_CONFIG,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="override a parameter: key=value")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="the same key twice starts one run"),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="follow the run; exit with its code")
    ] = False,
    node_id: NodeOption = None,
) -> None:
    """Run a pipeline now on a running daemon (recorded with trigger "manual")."""
    from ._run import parse_params

    body = {"params": parse_params(param), "trigger": "manual"}
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    call = _ask(config, f"/api/pipelines/{pipeline}/trigger", body, node_id)
    run_id = str(call.answer["run_id"])
    if call.answer.get("created"):
        plain(f"run {run_id} of {pipeline} started on node {call.node_id}", stderr=wait)
    else:
        plain(f"idempotency key {idempotency_key!r} already started run {run_id}", stderr=wait)
    if wait:
        raise typer.Exit(_follow(config, call, run_id))


def _follow(config: Any, call: DaemonCall, run_id: str) -> int:
    """Print the run's progress on stderr, then its summary; the run's exit code."""
    import anyio

    from podium.jobs import follow_progress
    from podium.orchestrator import load_config

    from ._app import console

    err = console(stderr=True)

    async def follow() -> dict[str, Any]:
        last: dict[str, Any] = {}
        async for line in follow_progress(call, run_id):
            last = line
            if err.is_terminal and not line.get("done"):
                err.print(_progress_line(line), end="\r", markup=False, highlight=False)
        return last

    final = anyio.run(follow, backend="asyncio")
    if "error" in final and "status" not in final:
        error(str(final["error"]))
        return EXIT_FAILED
    loaded = load_config(config)
    _print_run(loaded, run_id)
    return 0 if final.get("status") in ("ok", "partial") else EXIT_FAILED


def _progress_line(line: dict[str, Any]) -> str:
    return (
        f"{line.get('status')}: {line.get('requests', 0)} requests, "
        f"{line.get('failed_requests', 0)} failed, {line.get('stored', 0)} stored   "
    )


def _print_run(loaded: Config, run_id: str) -> None:
    import anyio

    from ._app import console
    from ._display import run_report

    async def fetch() -> Any:
        from podium.orchestrator import Journal, open_database

        async with open_database(loaded.database.url) as db:
            return await Journal(db).run(run_id)

    run, events, checks = anyio.run(fetch, backend="asyncio")
    out = console()
    for part in run_report(run, checks, events):
        out.print(part)


@app.command()
@user_errors
def backfill(
    pipeline: Annotated[str, typer.Argument(help="pipeline whose schedule slots to run")],
    from_: Annotated[str, typer.Option("--from", help="first slot at or after: a time")],
    to: Annotated[str, typer.Option("--to", help="slots before: a time")],
    concurrency: Annotated[int, typer.Option(help="runs at once", min=1, max=64)] = 1,
    config: ConfigOption = DEFAULT_CONFIG,
    node_id: NodeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the answer as JSON")] = False,
) -> None:
    """Run a pipeline once for each slot of its schedule in [--from, --to) that has no
    run yet, each with that slot as its scheduled time."""
    from podium.jobs._operations import parse_time

    start, end = parse_time(from_, "--from"), parse_time(to, "--to")
    body = {"from": start.isoformat(), "to": end.isoformat(), "concurrency": concurrency}
    call = _ask(config, f"/api/pipelines/{pipeline}/backfill", body, node_id)
    answer = call.answer
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    clipped = answer.get("to") not in (None, end.isoformat())
    plain(
        f"backfill of {pipeline} on node {call.node_id}: {answer['slots']} slot(s), "
        f"{answer['already_run']} already run, {answer['queued']} queued"
        + (f" (--to clipped to now, {answer['to']})" if clipped else "")
    )
    if answer["queued"]:
        # The queue is that node's memory: say how to finish it if the node stops first.
        plain(
            f"queued on node {call.node_id}: if it stops before they start, run the same "
            "backfill again (slots already run are skipped)"
        )


def _journal(loaded: Config, method: str, *args: Any, **kwargs: Any) -> Any:
    import anyio

    async def go() -> Any:
        from podium.orchestrator import Journal, open_database
        from podium.orchestrator.storage import Controls

        async with open_database(loaded.database.url) as db:
            target: Any = Journal(db) if method == "request_cancel" else Controls(db)
            return await getattr(target, method)(*args, **kwargs)

    return anyio.run(go, backend="asyncio")


def _who() -> str | None:
    try:
        return f"{getpass.getuser()} (podium-cli)"
    except (KeyError, OSError):
        return "podium-cli"


@app.command()
@user_errors
def pause(
    pipeline: Annotated[str, typer.Argument(help="pipeline whose fires to skip")],
    reason: Annotated[str | None, typer.Option(help="why, shown with the pause")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Skip a pipeline's scheduled fires, on every node, until `podium resume`
    (survives restarts and reloads)."""
    from podium.orchestrator import load_config

    loaded = load_config(config)
    loaded.pipeline(pipeline)
    changed = _journal(loaded, "pause", pipeline, reason=reason, by=_who())
    plain(f"paused {pipeline}" if changed else f"{pipeline} was paused already")


@app.command()
@user_errors
def resume(
    pipeline: Annotated[str, typer.Argument(help="pipeline to fire again")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Fire a paused pipeline on its schedule again."""
    from podium.orchestrator import load_config

    loaded = load_config(config)
    loaded.pipeline(pipeline)
    changed = _journal(loaded, "resume", pipeline, by=_who())
    plain(f"resumed {pipeline}" if changed else f"{pipeline} was not paused")
    schedule = loaded.schedules.get(pipeline)
    if schedule is not None and schedule.paused:
        error(f"{pipeline}'s schedule says paused = true in {config}: edit it to fire again",
              prefix="podium: warning:")  # fmt: skip


@app.command()
@user_errors
def cancel(
    run_id: Annotated[str, typer.Argument(help="run id or a unique prefix of it")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Stop a running run, on whichever node (or command line) runs it: it ends
    `cancelled` within a few seconds, undoing its side effects if it says how."""
    from podium.orchestrator import load_config

    loaded = load_config(config)
    run = _journal(loaded, "request_cancel", run_id)
    if run.status != "running":
        error(f"run {run.id} is not running (it ended {run.status})")
        raise typer.Exit(EXIT_FAILED)
    plain(f"cancel requested for run {run.id} of {run.pipeline}: it stops within a few seconds")
