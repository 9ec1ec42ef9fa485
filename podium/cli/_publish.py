"""``podium run --metrics PATH|- --pushgateway URL``: one run's metrics for Prometheus.

A one-off run has no ``/metrics`` for Prometheus to scrape, so it hands over the families
the daemon exposes (``podium.orchestrator._run_metrics``), for this run:

- ``--metrics PATH`` writes them in the text format, atomically (a temporary file in the
  same folder, renamed over PATH): node_exporter's textfile collector never reads half a
  file. Name it ``*.prom`` for that collector.
- ``--metrics -`` prints them on stdout after the run; the summary then goes to stderr,
  so stdout stays parseable. (``--json`` also wants stdout: the two are refused together.)
- ``--pushgateway URL`` pushes them to a Prometheus Pushgateway: job ``podium``, grouping
  key ``pipeline=<name>``, a PUT that replaces the group's previous push.

Each happens after the run is recorded. A file that cannot be written, or a pushgateway
that is down, slow or answers an error, is one line on stderr and exit status 1; the
run's rows and its journal entry stay as they are. The options are checked before the
run starts, so a mistyped URL or a missing folder costs no run.

prometheus_client is imported here, inside the functions: ``podium --help`` and
``podium validate`` never load it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ._app import error

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from podium.orchestrator import Config, RunResult

# Seconds a push may take in all (connect, send, answer) before it counts as failed.
PUSH_TIMEOUT = 10.0
PUSH_JOB = "podium"
STDOUT = "-"


@dataclass(frozen=True)
class Destinations:
    """Where ``podium run`` sends its run's metrics; nowhere when both are None."""

    path: Path | None = None  # Path("-"): stdout
    pushgateway: str | None = None

    @property
    def any(self) -> bool:
        return self.path is not None or self.pushgateway is not None

    @property
    def stdout(self) -> bool:
        return self.path is not None and str(self.path) == STDOUT


def destinations(metrics: str | None, pushgateway: str | None, *, as_json: bool) -> Destinations:
    """The options, checked before the run: a mistake is a usage error (exit 2)."""
    from podium.pipeline import ConfigError

    path = Path(metrics) if metrics is not None else None
    if metrics == STDOUT:
        if as_json:
            raise ConfigError(
                "--json and --metrics - both write to stdout: give --metrics a file "
                "(--metrics run.prom)"
            )
    elif path is not None:
        folder = path.parent
        if not folder.is_dir():
            raise ConfigError(f"--metrics {metrics}: folder {str(folder)!r} does not exist")
        if path.is_dir():
            raise ConfigError(f"--metrics {metrics} is a folder: give a file (run.prom)")
    if pushgateway is not None:
        _check_url(pushgateway)
    return Destinations(path, pushgateway)


def _check_url(url: str) -> None:
    from podium.pipeline import ConfigError

    # prometheus_client reads a URL without a scheme as http://.
    full = url if url.startswith(("http://", "https://")) else f"http://{url}"
    try:
        parts = urlsplit(full)
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or not parts.hostname:
        raise ConfigError(
            f"--pushgateway expects the Pushgateway's URL (http://host:9091), got {url!r}"
        )


async def publish(config: Config, result: RunResult, to: Destinations) -> bool:
    """Write and push the run's metrics; False when a destination failed (said on stderr)."""
    from podium.orchestrator._run_metrics import SUCCESS_STATUSES, run_registry

    earlier = None
    if result.status not in SUCCESS_STATUSES or result.run.dry_run:  # not a success itself
        earlier = await _earlier_success(config, result.run.pipeline)
    registry = run_registry(result, earlier_success=earlier)
    delivered = True
    if to.stdout:
        from prometheus_client import generate_latest

        sys.stdout.write(generate_latest(registry).decode())
        sys.stdout.flush()
    elif to.path is not None:
        delivered = _write(registry, to.path, result) and delivered
    if to.pushgateway is not None:
        delivered = await _push(registry, to.pushgateway, result) and delivered
    return delivered


async def _earlier_success(config: Config, pipeline: str) -> float | None:
    """The pipeline's last success before this failed run, from the journal; None when
    the journal cannot say (the output then lacks the gauge, as for a first run)."""
    from loguru import logger

    from podium.orchestrator import open_database
    from podium.orchestrator._run_metrics import last_success
    from podium.pipeline import PodiumError

    try:
        async with open_database(config.database.url) as database:
            return await last_success(database, pipeline)
    except PodiumError as exc:
        logger.warning("the metrics lack the pipeline's last success: {}", exc)
        return None


def _write(registry: CollectorRegistry, path: Path, result: RunResult) -> bool:
    from prometheus_client import write_to_textfile

    try:
        # A temporary file beside PATH, then rename(2): readers see the old or the new file.
        write_to_textfile(os.fspath(path), registry)
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else type(exc).__name__
        error(f"could not write the metrics to {path}: {reason}{_kept(result)}")
        return False
    return True


async def _push(registry: CollectorRegistry, url: str, result: RunResult) -> bool:
    """Push in a worker thread (prometheus_client blocks), within PUSH_TIMEOUT."""
    import anyio
    from prometheus_client import push_to_gateway

    from podium.orchestrator import Redactor

    def push() -> None:
        push_to_gateway(
            url,
            job=PUSH_JOB,
            registry=registry,
            grouping_key={"pipeline": result.run.pipeline},
            timeout=PUSH_TIMEOUT,
        )

    reason = None
    try:
        with anyio.fail_after(PUSH_TIMEOUT):
            # Abandoned on timeout: urllib's own timeout ends the thread soon after.
            await anyio.to_thread.run_sync(push, abandon_on_cancel=True)
    except TimeoutError:
        reason = f"no answer within {PUSH_TIMEOUT:g}s"
    except (OSError, ValueError) as exc:
        reason = _push_failure(exc)
    if reason is None:
        return True
    shown = Redactor()(url)  # a URL may carry user:password@
    error(f"could not push the metrics to the Pushgateway at {shown}: {reason}{_kept(result)}")
    return False


def _push_failure(exc: OSError | ValueError) -> str:
    """urllib's error in a few words: the status answered, or why nothing answered."""
    from urllib.error import HTTPError, URLError

    if isinstance(exc, HTTPError):
        exc.close()  # it holds the answer's socket open
        return f"it answered HTTP {exc.code} {exc.reason}".rstrip()
    cause: object = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(cause, TimeoutError):
        return f"no answer within {PUSH_TIMEOUT:g}s"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()  # "connection refused"
    return str(cause) or type(cause).__name__


def _kept(result: RunResult) -> str:
    """That the run's data is safe, and where to see it."""
    if result.record_error is not None:
        return ""  # said on its own line already: the journal does not know how it ended
    run = result.run
    return f" (run {run.id[:8]} of {run.pipeline!r} is recorded: podium show {run.id[:8]})"
