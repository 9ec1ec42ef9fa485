"""The ``podium`` command line.

Exit codes: 0 the run was ok (or partial within its policy), 1 the run failed,
2 a usage or configuration mistake. User mistakes print one line, never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import orjson
import typer

from pipeline import ConfigError, PipelineError, PluginError, PodiumError, RunNotFound

from ._config import Config, load_config
from ._database import open_database
from ._journal import Journal
from ._logging import configure_logging
from ._runner import RunResult, run_pipeline
from ._stats import RunStats

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="podium",
    help="Run API-aggregation pipelines: fetch → transform → check → store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
USAGE_ERRORS = (ConfigError, PipelineError, PluginError, RunNotFound)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="config file", envvar="PODIUM_CONFIG")
]
DEFAULT_CONFIG = Path("config.toml")


def _console(*, stderr: bool = False) -> Console:
    # rich is imported on first use: a --json run never needs it.
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=stderr)


def _err_console() -> Console:
    return _console(stderr=True)


def user_errors(fn: F) -> F:
    """Turn podium errors into one line on stderr and the right exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PodiumError as exc:
            _err_console().print(f"[red]podium: error:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(2 if isinstance(exc, USAGE_ERRORS) else 1) from None
        except KeyboardInterrupt:
            _err_console().print("podium: interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _params(values: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects key=value, got {item!r}")
        try:
            params[key] = orjson.loads(raw)  # numbers, booleans, lists stay typed
        except orjson.JSONDecodeError:
            params[key] = raw
    return params


async def _execute(
    config: Config,
    name: str,
    *,
    params: dict[str, Any],
    dry_run: bool,
    console: Console | None,
) -> RunResult:
    pipeline = config.pipeline(name)
    unknown = sorted(set(params) - set(pipeline.params))
    if unknown:
        known = ", ".join(pipeline.params) or "none"
        raise ConfigError(
            f"pipeline {name!r} has no parameter {', '.join(unknown)} (parameters: {known})"
        )
    connectors = config.connectors_for(pipeline)
    stats = RunStats()
    async with open_database(config.database.url) as database:
        if console is None:
            return await run_pipeline(
                pipeline,
                connectors=connectors,
                database=database,
                concurrency=config.limits.concurrency,
                params=params,
                dry_run=dry_run,
                stats=stats,
                secrets=config.secrets,
            )
        from ._display import LiveProgress

        live = LiveProgress(console, stats)
        result: RunResult | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(live.run, name="progress")
            try:
                result = await run_pipeline(
                    pipeline,
                    connectors=connectors,
                    database=database,
                    concurrency=config.limits.concurrency,
                    params=params,
                    dry_run=dry_run,
                    stats=stats,
                    secrets=config.secrets,
                )
            finally:
                tg.cancel_scope.cancel()
        assert result is not None
        return result


def _report(result: RunResult, *, as_json: bool) -> None:
    from ._display import checks_table, events_table, result_json, summary_table

    if as_json:
        sys.stdout.write(
            orjson.dumps(result_json(result), option=orjson.OPT_INDENT_2).decode() + "\n"
        )
    else:
        console = _console()
        console.print(summary_table(result))
        for table in (checks_table(result.checks), events_table(result.events)):
            if table is not None:
                console.print(table)
        if result.run.error:
            console.print(f"[red]error:[/red] {result.run.error}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


def _run_command(
    config_path: Path,
    pipeline: str,
    *,
    params: dict[str, Any],
    dry_run: bool,
    as_json: bool,
    log_json: bool,
    verbose: bool,
) -> None:
    configure_logging(level="DEBUG" if verbose else "WARNING" if as_json else "INFO", json=log_json)
    config = load_config(config_path)
    err = _console(stderr=True)
    show_progress = err.is_terminal and not as_json and not log_json
    result = anyio.run(
        functools.partial(
            _execute,
            config,
            pipeline,
            params=params,
            dry_run=dry_run,
            console=err if show_progress else None,
        ),
        backend="asyncio",
    )
    _report(result, as_json=as_json)


@app.command()
@user_errors
def run(
    pipeline: Annotated[str, typer.Argument(help="pipeline name from the config")],
    config: ConfigOption = DEFAULT_CONFIG,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="override a parameter: key=value")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="fetch and check, store nothing")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    log_json: Annotated[bool, typer.Option("--log-json", help="log JSON lines to stderr")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Run a pipeline once, with live progress and a summary."""
    _run_command(
        config,
        pipeline,
        params=_params(param),
        dry_run=dry_run,
        as_json=as_json,
        log_json=log_json,
        verbose=verbose,
    )


@app.command()
@user_errors
def demo(
    config: ConfigOption = DEFAULT_CONFIG,
    pipeline: Annotated[str, typer.Option(help="pipeline to run")] = "demo",
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Run the demo pipeline against the bundled demo API (offline, on loopback)."""
    from ._demo_server import serve_demo_api

    with serve_demo_api() as url:
        os.environ["PODIUM_DEMO_URL"] = url
        _run_command(
            config,
            pipeline,
            params={},
            dry_run=False,
            as_json=as_json,
            log_json=False,
            verbose=False,
        )


@app.command("demo-api")
@user_errors
def demo_api(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8765,
) -> None:
    """Serve the bundled demo API on 127.0.0.1 until interrupted."""
    from aiohttp import web

    from ._demo_api import demo_app

    web.run_app(demo_app(), host="127.0.0.1", port=port, print=lambda s: _err_console().print(s))


@app.command()
@user_errors
def validate(
    config: ConfigOption = DEFAULT_CONFIG,
    pipeline: Annotated[str | None, typer.Argument(help="validate only this pipeline")] = None,
) -> None:
    """Check the config: every connector and pipeline, or one pipeline and its connectors."""
    loaded = load_config(config)
    if pipeline is not None:
        chosen = loaded.pipeline(pipeline)
        loaded.connectors_for(chosen)
        typer.echo(f"{config}: pipeline {pipeline!r} is valid")
        return
    problems = loaded.problems()
    for problem in problems:
        _err_console().print(f"[red]podium: error:[/red] {problem}", highlight=False)
    if problems:
        raise typer.Exit(2)
    typer.echo(
        f"{config}: ok — {len(loaded.pipelines)} pipelines, {len(loaded.connectors)} connectors"
    )


@app.command()
@user_errors
def pipelines(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List the config's pipelines and their stages."""
    from rich.table import Table

    loaded = load_config(config)
    table = Table(title=str(config), title_justify="left")
    for column in ("pipeline", "stages", "connectors", "description"):
        table.add_column(column, overflow="fold")
    for name, entry in loaded.pipelines.items():
        if isinstance(entry, PodiumError):
            table.add_row(name, f"[red]invalid: {entry}[/red]", "", "")
            continue
        chain = " → ".join(f"{s.name}({s.kind})" for s in entry.stages)
        table.add_row(name, chain, ", ".join(sorted(entry.connectors())), entry.description)
    _console().print(table)


@app.command()
@user_errors
def runs(
    pipeline: Annotated[str | None, typer.Argument(help="only this pipeline's runs")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    limit: Annotated[int, typer.Option(help="how many runs")] = 20,
) -> None:
    """List recent runs, newest first."""
    from ._display import runs_table

    loaded = load_config(config)

    async def fetch() -> Any:
        async with open_database(loaded.database.url) as database:
            journal = Journal(database)
            return await journal.runs(pipeline, limit)

    _console().print(runs_table(anyio.run(fetch, backend="asyncio")))


@app.command()
@user_errors
def show(
    run_id: Annotated[str, typer.Argument(help="run id or a unique prefix of it")],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """Show one run: counts per stage, checks and recorded failures."""
    from ._display import checks_table, events_table, runs_table

    loaded = load_config(config)

    async def fetch() -> Any:
        async with open_database(loaded.database.url) as database:
            journal = Journal(database)
            return await journal.run(run_id)

    run, events, checks = anyio.run(fetch, backend="asyncio")
    if as_json:
        data = {
            "run": run.model_dump(mode="json"),
            "checks": [c.model_dump(mode="json") for c in checks],
            "events": [e.model_dump(mode="json") for e in events],
        }
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    console = _console()
    console.print(runs_table([run]))
    console.print_json(orjson.dumps(run.stages).decode())
    for table in (checks_table(checks), events_table(events, limit=50)):
        if table is not None:
            console.print(table)


connectors_app = typer.Typer(
    help="Connector kinds: list what is installed, or start a new plugin package.",
    add_completion=False,
)
app.add_typer(connectors_app, name="connectors")


@connectors_app.callback(invoke_without_command=True)
def connectors_main(ctx: typer.Context) -> None:
    """List the installed connector kinds (the default), or start a plugin with `new`."""
    if ctx.invoked_subcommand is None:
        list_connectors()


@connectors_app.command("list")
@user_errors
def list_connectors() -> None:
    """List the connector kinds installed: kind, package, version and config fields."""
    from rich.table import Table

    from connectors import COMMON_FIELDS, describe_kinds

    table = Table(
        title="connector kinds",
        title_justify="left",
        caption=f"every kind also takes: {', '.join(COMMON_FIELDS)}",
        caption_justify="left",
    )
    for column in ("kind", "package", "version", "config fields"):
        table.add_column(column, overflow="fold")
    for info in describe_kinds():
        if info.error is not None:
            table.add_row(info.kind, info.package, info.version, f"[red]broken: {info.error}[/red]")
        else:
            table.add_row(info.kind, info.package, info.version, ", ".join(info.fields) or "-")
    _console().print(table)


@connectors_app.command("new")
@user_errors
def new_connector(
    name: Annotated[str, typer.Argument(help="the connector kind, e.g. weather-api")],
    directory: Annotated[
        Path, typer.Option("--dir", "-d", help="where to create the package folder")
    ] = Path("."),
) -> None:
    """Write a connector plugin package: pyproject with the entry point, module, test."""
    from ._scaffold import write_skeleton

    root = write_skeleton(name, directory)
    typer.echo(f"created {root}")
    typer.echo(f"next: pip install -e '{root}[test]' && python -m pytest {root}")


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
    """Make running daemons re-read the config (sends them SIGHUP)."""
    from jobs import reload_daemons

    for info in reload_daemons(config, node_id):
        typer.echo(f"reload sent to node {info['node_id']} (pid {info['pid']})")


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
