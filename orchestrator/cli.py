"""The ``podium`` command line.

Exit codes: 0 the run was ok (or partial within its policy), 1 the run failed,
2 a usage or configuration mistake. User mistakes print one line, never a traceback.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import orjson
import typer

from pipeline import ConfigError, PodiumError

from ._cli_app import (
    DEFAULT_CONFIG,
    ConfigOption,
    _console,
    _err_console,
    app,
    user_errors,
)
from ._config import Config, load_config
from ._database import open_database
from ._journal import Journal
from ._logging import configure_logging
from ._runner import RunResult, run_pipeline
from ._stats import RunStats

if TYPE_CHECKING:
    from rich.console import Console


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


# Registered after the commands above, so `podium --help` lists the everyday ones first.
from . import _cli_connectors, _cli_daemon  # noqa: E402, F401


def main() -> None:
    # What start-up imported lives as long as the process: freeze it out of the cyclic
    # collector's scans. Records are acyclic dicts freed by reference counting, so the
    # collector may run far less often than its default of every 700 allocations.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    app()


if __name__ == "__main__":
    main()
