"""``podium run``, ``demo``, ``demo-api``, ``validate`` and ``pipelines``.

Exit codes: 0 the run was ok (or partial within its policy), 1 the run failed (or its
metrics could not be written or pushed: the run is recorded all the same), 2 a usage or
configuration mistake. User mistakes print one line, never a traceback.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import DEFAULT_CONFIG, EXIT_FAILED, ConfigOption, app, console, error, user_errors

if TYPE_CHECKING:
    from rich.console import Console

    from podium.connectors import Connector
    from podium.orchestrator import Config, Database, RunResult, RunRow
    from podium.orchestrator.http import Transport
    from podium.pipeline import Pipeline

    from ._publish import Destinations


def parse_params(values: list[str] | None) -> dict[str, Any]:
    """``--param key=value`` pairs; values that read as JSON keep their type."""
    import orjson

    from podium.pipeline import ConfigError

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


async def _interrupted_run(
    config: Config, database: Database, pipeline: Pipeline, params: dict[str, Any]
) -> RunRow:
    """The pipeline's latest interrupted run, claimed by this process to continue it —
    after checking it can be: a run refused is left as it was."""
    import os

    from podium.orchestrator import Journal
    from podium.orchestrator.engine import pipeline_hash, this_process
    from podium.pipeline import ResumeRefused

    name = pipeline.name
    journal = Journal(database, lease=config.journal.lease)
    found = await journal.runs(name, 1)
    latest = found[0] if found else None
    if latest is None or latest.status != "interrupted":
        state = f"its latest run is {latest.status}" if latest else "it has no runs"
        if latest is not None and latest.status == "running" and latest.lease_expires_at:
            left = (latest.lease_expires_at - datetime.now(UTC)).total_seconds()
            state += (
                f" (its lease runs out in {max(left, 0):.0f}s: if its process is gone, it "
                "can be resumed then)"
            )
        raise ResumeRefused(f"nothing to resume: {state} (see: podium runs {name})")
    if latest.pipeline_hash != pipeline_hash(pipeline, {**pipeline.params, **params}):
        raise ResumeRefused(
            f"run {latest.id} of {name!r} was started with another definition of the "
            "pipeline (its stages or parameters changed since): start a new run"
        )
    claimed = await journal.claim(
        latest, node=this_process(), pid=os.getpid(), lock_key=latest.lock_key, cause="--resume"
    )
    if claimed is None:
        raise ResumeRefused(f"run {latest.id} of {name!r} was taken over by another process")
    return claimed


async def _execute(
    config: Config,
    name: str,
    *,
    params: dict[str, Any],
    dry_run: bool,
    progress: Console | None,
    log_level: str = "INFO",
    resume: bool = False,
    cassettes: Cassettes | None = None,
) -> tuple[RunResult, list[str]]:
    """Run the pipeline and deliver its alert notifications; the result, and a line for
    each notification that was not delivered. With ``cassettes``, record every exchange
    into them or serve the run from them (a replay evaluates no alert rules: it rehearses
    a run, it is not one that should page anyone)."""
    import anyio

    from podium.orchestrator import RunStats, open_database, run_pipeline
    from podium.pipeline import ConfigError

    from ._deliver import deliver_own

    pipeline = config.pipeline(name)
    unknown = sorted(set(params) - set(pipeline.params))
    if unknown:
        known = ", ".join(pipeline.params) or "none"
        raise ConfigError(
            f"pipeline {name!r} has no parameter {', '.join(unknown)} (parameters: {known})"
        )
    connectors = config.connectors_for(pipeline)
    transports = cassettes.transports(connectors) if cassettes is not None else None
    replaying = cassettes is not None and cassettes.replay
    stats = RunStats()
    run = functools.partial(
        run_pipeline,
        pipeline,
        connectors=connectors,
        concurrency=config.limits.concurrency,
        params=params,
        dry_run=dry_run,
        stats=stats,
        secrets=config.secrets,
        lease=config.journal.lease,
        alerts=() if replaying else config.rules.get(name, ()),
        transport=transports,
    )
    with _sigterm_as_interrupt():
        async with open_database(config.database.url) as database:
            if resume:
                claimed = await _interrupted_run(config, database, pipeline, params)
                run = functools.partial(run, resume=claimed)
            if progress is None:
                done = await run(database=database)
                return done, await deliver_own(config, database, done)
            from podium.orchestrator import configure_logging

            from ._progress import LiveProgress

            live = LiveProgress(progress, stats)
            result: RunResult | None = None
            configure_logging(level=log_level, sink=live.log, colorize=True, replace_default=True)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(live.run, name="progress")
                    try:
                        result = await run(database=database)
                    finally:
                        tg.cancel_scope.cancel()
            finally:
                configure_logging(level=log_level, replace_default=True)
            assert result is not None
            return result, await deliver_own(config, database, result)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a container stopping, `timeout`, systemd) ends the run as Ctrl-C does: the
    event loop's SIGINT handler cancels the run, which records itself `interrupted` for
    --resume. Left alone, SIGTERM killed the process and the run stayed `running` until
    its lease ran out. Only where the loop installed that handler (the main thread)."""
    handler = signal.getsignal(signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    if not main or not callable(handler) or handler is signal.default_int_handler:
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class Cassettes:
    """``--record DIR`` or ``--replay DIR``: one cassette per connector in ``directory``."""

    directory: Path
    replay: bool

    @classmethod
    def of(cls, record: Path | None, replay: Path | None) -> Cassettes | None:
        from podium.pipeline import ConfigError

        if record is not None and replay is not None:
            raise ConfigError("--record and --replay exclude each other: give one")
        if record is None and replay is None:
            return None
        if record is not None:
            # A path that cannot hold cassettes is a mistake in the command: said before
            # the run starts, as a usage error (exit 2), not as a failed run.
            try:
                record.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"--record {record}: cannot make the cassette directory: {exc.strerror}"
                ) from None
        return cls(replay or record, replay=replay is not None)  # type: ignore[arg-type]

    def transports(self, connectors: dict[str, Connector]) -> dict[str, Transport]:
        from podium.orchestrator.http import play_from, record_to

        if self.replay:
            return play_from(self.directory, connectors)
        return record_to(self.directory, connectors)


def _demo_hint(config: Config, result: RunResult) -> str | None:
    """A run against the bundled demo API's address that found nothing listening there."""
    refused = any("connection refused" in str(c.get("cause", "")) for c in result.run.causes)
    if not refused:
        return None  # the demo package (its aiohttp server) is not imported for nothing
    from .demo import DEFAULT_DEMO_URL

    uses_demo = any(
        not isinstance(c, Exception) and c.config.base_url == DEFAULT_DEMO_URL
        for c in config.connectors.values()
    )
    if uses_demo:
        return (
            f"nothing answers at {DEFAULT_DEMO_URL}: start the demo API with "
            "`podium demo-api` in another terminal, or run `podium demo`, which starts it"
        )
    return None


def report(
    result: RunResult, *, as_json: bool, hint: str | None = None, notes: list[str] | None = None
) -> None:
    """The run's summary, then exit status 1 unless the run was ok."""
    show_summary(result, as_json=as_json, hint=hint, notes=notes)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def show_summary(
    result: RunResult,
    *,
    as_json: bool,
    hint: str | None = None,
    stderr: bool = False,
    notes: list[str] | None = None,
) -> None:
    """The run's summary; on stderr with ``stderr`` (stdout carries the metrics)."""
    from ._display import result_json, run_report

    if as_json:
        import orjson

        text = orjson.dumps(result_json(result), option=orjson.OPT_INDENT_2).decode()
        (sys.stderr if stderr else sys.stdout).write(text + "\n")
    else:
        out = console(stderr=stderr)
        for part in run_report(result.run, result.checks, result.events):
            out.print(part)
    if result.record_error is not None:
        error(result.record_error)
    for note in notes or ():
        error(note, prefix="podium: warning:")
    if hint is not None and not result.ok:
        error(hint, prefix="podium: hint:")


def run_command(
    config_path: Path,
    pipeline: str,
    *,
    params: dict[str, Any],
    dry_run: bool,
    as_json: bool,
    log_json: bool,
    verbose: bool,
    resume: bool = False,
    metrics: Destinations | None = None,
    cassettes: Cassettes | None = None,
) -> None:
    import anyio

    from podium.orchestrator import configure_logging, load_config
    from podium.orchestrator.config import UnsetAsPlaceholder

    level = "DEBUG" if verbose else "WARNING" if as_json else "INFO"
    configure_logging(level=level, json=log_json, replace_default=True)
    # A replay needs no credential: the cassette answers, and requests are matched with
    # their credentials masked. An unset ${VAR} reads as a placeholder instead of failing.
    replaying = cassettes is not None and cassettes.replay
    config = load_config(config_path, env=UnsetAsPlaceholder() if replaying else None)
    err = console(stderr=True)
    show_progress = err.is_terminal and not as_json and not log_json
    result, notes = anyio.run(
        functools.partial(
            _execute,
            config,
            pipeline,
            params=params,
            dry_run=dry_run,
            progress=err if show_progress else None,
            log_level=level,
            resume=resume,
            cassettes=cassettes,
        ),
        backend="asyncio",
    )
    hint = _demo_hint(config, result) if cassettes is None or not cassettes.replay else None
    if metrics is None or not metrics.any:
        report(result, as_json=as_json, hint=hint, notes=notes)
        return
    from ._publish import publish

    # The summary first, the metrics after it: written, printed, pushed — each only now
    # that the run is recorded, so a destination that fails loses none of its data.
    show_summary(result, as_json=as_json, hint=hint, stderr=metrics.stdout, notes=notes)
    delivered = anyio.run(publish, config, result, metrics, backend="asyncio")
    if not (result.ok and delivered):
        raise typer.Exit(EXIT_FAILED)


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
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="continue the pipeline's latest interrupted run where it stopped"
        ),
    ] = False,
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            metavar="PATH",
            help="write the run's Prometheus metrics to PATH (atomically; - for stdout, "
            "the summary then goes to stderr)",
        ),
    ] = None,
    pushgateway: Annotated[
        str | None,
        typer.Option(
            "--pushgateway",
            metavar="URL",
            help="push the run's Prometheus metrics to this Pushgateway "
            "(job podium, grouping key pipeline)",
        ),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            metavar="DIR",
            help="write every exchange into cassettes in DIR (one <connector>.yaml each, "
            "vcrpy's format, secrets masked)",
        ),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(
            "--replay",
            metavar="DIR",
            help="run offline from the cassettes in DIR: no socket is opened, and a request "
            "they do not hold fails the run",
        ),
    ] = None,
) -> None:
    """Run a pipeline once, with live progress and a summary."""
    from ._publish import destinations

    cassettes = Cassettes.of(record, replay)
    run_command(
        config,
        pipeline,
        params=parse_params(param),
        dry_run=dry_run,
        as_json=as_json,
        log_json=log_json,
        verbose=verbose,
        resume=resume,
        metrics=destinations(metrics, pushgateway, as_json=as_json),
        cassettes=cassettes,
    )


@app.command()
@user_errors
def demo(
    config: ConfigOption = DEFAULT_CONFIG,
    pipeline: Annotated[str, typer.Option(help="pipeline to run")] = "demo",
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Run the demo pipeline against the bundled demo API (offline, on loopback)."""
    from .demo import serve_demo_api

    with serve_demo_api() as url:
        os.environ["PODIUM_DEMO_URL"] = url
        os.environ.setdefault("PODIUM_ALERT_WEBHOOK", f"{url}/webhook")
        run_command(
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

    from ._app import plain
    from .demo import demo_app

    web.run_app(demo_app(), host="127.0.0.1", port=port, print=lambda s: plain(s, stderr=True))


@app.command()
@user_errors
def validate(
    config: ConfigOption = DEFAULT_CONFIG,
    pipeline: Annotated[str | None, typer.Argument(help="validate only this pipeline")] = None,
) -> None:
    """Check the config: every connector and pipeline, or one pipeline and its connectors."""
    from podium.orchestrator.config import load_config

    loaded = load_config(config)
    if pipeline is not None:
        chosen = loaded.pipeline(pipeline)
        loaded.connectors_for(chosen)
        typer.echo(f"{config}: pipeline {pipeline!r} is valid")
        return
    problems = loaded.problems()
    for problem in problems:
        error(str(problem))
    if problems:
        raise typer.Exit(2)
    if loaded.scheduled or loaded.scheduler:
        from podium.jobs import build_plan

        build_plan(loaded)  # the daemon's own checks: [scheduler], each trigger, alerts
    elif loaded.alerts:
        from podium.jobs import check_alerts

        check_alerts(loaded)
    own = [n for n in loaded.connectors if not n.startswith("monitor.")]
    counts = [_many(len(loaded.pipelines), "pipeline"), _many(len(own), "connector")]
    if loaded.monitors:
        counts[0] += f" ({_many(len(loaded.monitors), 'monitor')})"
    if loaded.alerts:
        counts.append(_many(len(loaded.alerts), "alert"))
    typer.echo(f"{config}: ok — {', '.join(counts)}")


def _many(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


@app.command()
@user_errors
def pipelines(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List the config's pipelines and their stages."""
    from podium.orchestrator.config import load_config

    from ._display import pipelines_table

    console().print(pipelines_table(load_config(config)))
