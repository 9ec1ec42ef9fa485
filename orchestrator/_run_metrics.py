"""What runs tell Prometheus: request latency and errors, last successes, checks.

One builder of these families serves both places that expose them, so their names,
types, help and labels cannot drift apart:

- the daemon's ``/metrics`` registers a ``RunMetrics`` and records every finished run
  into it (``jobs/_metrics.py``): the histogram and counters add up over its lifetime;
- ``podium run --metrics / --pushgateway`` records its one run into a fresh one and
  writes or pushes that (``run_registry``).

The latency histogram is pre-bucketed by the gateway (``ConnectorStats.latency``, fixed
bounds ``LATENCY_BUCKETS``): a run adds its bucket counts here once, instead of an
``observe`` per request, and a custom collector yields them as a
``HistogramMetricFamily`` (prometheus_client's documented way for such data).

A pipeline's last success is the end of its last run that ended ``ok`` or ``partial``:
the two statuses after which ``podium run`` exits 0, the run having done its work within
its policy (a partial run's failures show in the error counters and check gauges). Every
label value comes from the config (pipelines, connectors, check names) or a fixed set
(error kinds): never a run id or URL, so the number of series stays bounded.

prometheus_client is imported by this module: nothing on the path of ``import podium``,
``podium --help`` or ``podium validate`` imports it (the command line imports it inside
the command that needs it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .engine import RunResult, RunStats
from .http import LATENCY_BUCKETS, ConnectorStats
from .storage import CheckResultRow, Database, Journal

# The statuses that count as a success for ``podium_pipeline_last_success_timestamp_seconds``.
SUCCESS_STATUSES = ("ok", "partial")
# The ``le`` labels as prometheus_client's own histograms write them ("0.005", "1.0").
_BOUNDS = [repr(float(b)) for b in LATENCY_BUCKETS] + ["+Inf"]


class RunMetrics(Collector):
    """The run-derived families, from every run recorded into it; a prometheus_client
    collector (register it in a registry, which reads it on each scrape)."""

    def __init__(self) -> None:
        self.connectors: dict[str, ConnectorStats] = {}
        self.last_success: dict[str, float] = {}  # pipeline → unix time
        self.checks_up: dict[tuple[str, str], bool] = {}  # (pipeline, check) → passing
        self.checks_last_success: dict[tuple[str, str], float] = {}

    def record(
        self,
        pipeline: str,
        status: str,
        stats: RunStats,
        checks: Iterable[CheckResultRow],
        *,
        finished: float,
        dry_run: bool = False,
    ) -> None:
        """Add one finished run: its requests (whatever its status), its checks, and
        ``finished`` (unix time) as the pipeline's last success if it ended ok or partial
        — unless it was a dry run, which stored nothing: not a success of the pipeline."""
        for name, connector in stats.connectors.items():
            self.connectors.setdefault(name, ConnectorStats()).merge(connector)
        if status in SUCCESS_STATUSES and not dry_run:
            self.success(pipeline, finished)
        for check in checks:
            if check.passed + check.failed == 0:
                continue  # not evaluated in this run (no record reached it): says nothing
            key = (pipeline, check.name)
            self.checks_up[key] = check.ok
            if check.ok:
                self.checks_last_success[key] = finished

    def follow_checks(self, status: Iterable[Mapping[str, Any]]) -> None:
        """Take the checks' state from the journal's ``podium_check_status`` rows: with
        several daemons, each runs some of the fires, and every one of them should
        report the cluster's latest result, not the latest of its own runs."""
        for row in status:
            key = (row["pipeline"], row["name"])
            self.checks_up[key] = bool(row["ok"])
            if row["last_success_at"] is not None:
                self.checks_last_success[key] = row["last_success_at"].timestamp()

    def success(self, pipeline: str, at: float) -> None:
        """A success of ``pipeline`` at ``at`` (unix time), unless a later one is known."""
        self.last_success[pipeline] = max(at, self.last_success.get(pipeline, at))

    def collect(self) -> Iterator[Metric]:
        durations = HistogramMetricFamily(
            "podium_request_duration_seconds",
            "HTTP exchanges answered, by connector and time to the full answer "
            "(every attempt and redirect hop; finished runs).",
            labels=["connector"],
        )
        errors = CounterMetricFamily(
            "podium_request_errors",
            "Failed request attempts by connector and kind: timeout, connection, tls, dns, "
            "bad_response, request, status_4xx, status_5xx (retried attempts included).",
            labels=["connector", "kind"],
        )
        for name, stats in sorted(self.connectors.items()):
            cumulative = accumulate(stats.latency)
            durations.add_metric([name], list(zip(_BOUNDS, cumulative, strict=True)), stats.seconds)
            for kind, n in sorted(stats.errors.items()):
                errors.add_metric([name, kind], n)
        yield durations
        yield errors
        yield _gauge(
            "podium_pipeline_last_success_timestamp_seconds",
            "Unix time the pipeline's last run that ended ok or partial finished.",
            ["pipeline"],
            (((p,), at) for p, at in self.last_success.items()),
        )
        yield _gauge(
            "podium_check_up",
            "1 if the check passed in the last run that evaluated it, else 0.",
            ["pipeline", "check"],
            ((key, 1.0 if up else 0.0) for key, up in self.checks_up.items()),
        )
        yield _gauge(
            "podium_check_last_success_timestamp_seconds",
            "Unix time the last run in which the check passed finished.",
            ["pipeline", "check"],
            self.checks_last_success.items(),
        )


def _gauge(
    name: str, help_text: str, labels: list[str], values: Iterable[tuple[tuple[str, ...], float]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=labels)
    for key, value in sorted(values):
        family.add_metric(list(key), value)
    return family


def run_registry(result: RunResult, *, earlier_success: float | None = None) -> CollectorRegistry:
    """The families for one run (``podium run``), in a registry of their own: the
    process's default registry, with its process and Python collectors, stays out.

    ``earlier_success`` (unix time, see ``last_success``) keeps the pipeline's last
    success in the output when this run failed: a textfile or a pushgateway group is
    replaced whole by each run, and a gauge that vanished with a failed run would leave
    an alert on its age with nothing to fire on.
    """
    run = result.run
    finished = run.finished_at.timestamp() if run.finished_at is not None else time.time()
    metrics = RunMetrics()
    metrics.record(
        run.pipeline, run.status, result.stats, result.checks, finished=finished,
        dry_run=run.dry_run,
    )  # fmt: skip
    if earlier_success is not None:
        metrics.success(run.pipeline, earlier_success)
    registry = CollectorRegistry()
    registry.register(metrics)
    return registry


async def last_success(database: Database, pipeline: str, *, look_back: int = 20) -> float | None:
    """When the pipeline's last run that ended ok or partial (not a dry run) finished,
    from the journal; None when none of its last ``look_back`` such runs qualifies."""
    runs = await Journal(database).runs(pipeline, look_back, statuses=SUCCESS_STATUSES)
    for run in runs:
        if not run.dry_run and run.finished_at is not None:
            return run.finished_at.timestamp()
    return None
