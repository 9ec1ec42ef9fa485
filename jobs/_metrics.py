"""The daemon's metrics, exposed with ``prometheus_client`` from a registry of its own.

One registry per daemon (never the library's global one), so two daemons in one process
— tests, an embedding host — never mix their counters. Label sets are bounded by the
config (pipelines, connectors, statuses, HTTP codes), so the series stay the same in
number however many runs the daemon makes.

The request latency histogram, the error counters and the last-success and check gauges
come from ``podium.orchestrator._run_metrics`` (``RunMetrics``), which ``podium run
--metrics`` uses for its one run: the same families in both places.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from podium.orchestrator import CheckResultRow, RunStats
from podium.orchestrator._run_metrics import RunMetrics

CONTENT_TYPE = CONTENT_TYPE_LATEST
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)


class _Running(Collector):
    """Runs in progress, read from the run pool when scraped (never stale)."""

    def __init__(self, running: Callable[[], dict[str, int]]) -> None:
        self._running = running

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "podium_runs_running", "Runs in progress on this node.", labels=["pipeline"]
        )
        for pipeline, n in sorted(self._running().items()):
            family.add_metric([pipeline], n)
        yield family


class Metrics:
    """What ``GET /metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "podium_runs", "Finished scheduled runs by pipeline and status.",
            ["pipeline", "status"], registry=r,
        )  # fmt: skip
        self.skipped = Counter(
            "podium_fires_skipped", "Fires that started no run, by reason.",
            ["pipeline", "reason"], registry=r,
        )  # fmt: skip
        self.durations = Histogram(
            "podium_run_duration_seconds", "Run wall time by pipeline.",
            ["pipeline"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.lateness = Histogram(
            "podium_fire_lateness_seconds", "Run start minus scheduled time.",
            buckets=LATENESS_BUCKETS, registry=r,
        )  # fmt: skip
        self.requests = Counter(
            "podium_requests", "HTTP requests by connector and status code.",
            ["connector", "code"], registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "podium_retries", "Retried requests by connector.", ["connector"], registry=r
        )
        self.stored = Counter(
            "podium_records_stored", "Records stored by pipeline.", ["pipeline"], registry=r
        )
        self.reloads = Counter(
            "podium_reloads", "Config reloads by outcome.", ["outcome"], registry=r
        )
        self._running: Callable[[], dict[str, int]] = dict
        self.registry.register(_Running(lambda: self._running()))
        # Request latency and errors, last successes, checks: every finished run's.
        self.finished = RunMetrics()
        self.registry.register(self.finished)

    def watch_running(self, running: Callable[[], dict[str, int]]) -> None:
        """Where ``podium_runs_running`` reads its values when scraped."""
        self._running = running

    def skip(self, pipeline: str, reason: str) -> None:
        self.skipped.labels(pipeline, reason).inc()

    def reload(self, outcome: str) -> None:
        self.reloads.labels(outcome).inc()

    def run_finished(
        self,
        pipeline: str,
        status: str,
        seconds: float,
        stats: RunStats,
        checks: Iterable[CheckResultRow] = (),
    ) -> None:
        """Count a finished run (any status); ``checks``: its check results, if it got
        as far as to have them."""
        self.finished.record(pipeline, status, stats, checks, finished=time.time())
        self.runs.labels(pipeline, status).inc()
        self.durations.labels(pipeline).observe(seconds)
        self.stored.labels(pipeline).inc(stats.stored)
        for name, conn in stats.connectors.items():
            self.retries.labels(name).inc(conn.retries)
            for code, n in conn.statuses.items():
                self.requests.labels(name, str(code)).inc(n)

    def sample(self, name: str, **labels: str) -> float:
        """One sample's current value, e.g. ``sample("podium_runs_total", pipeline="p",
        status="ok")``; 0 when it has not been recorded yet."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def render(self) -> bytes:
        return generate_latest(self.registry)
