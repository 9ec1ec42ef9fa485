"""The daemon's counters and their Prometheus text exposition (format 0.0.4).

Label sets are bounded by the config (pipelines, connectors, statuses, HTTP codes), so
the counters stay the same size however many runs the daemon makes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from orchestrator import RunStats

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)


@dataclass(slots=True)
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.total += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out = [
            f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {n}'
            for bound, n in zip(self.buckets, self.counts, strict=True)
        ]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        out.append(
            f"{name}_sum{{{labels}}} {self.total:.6f}" if labels else f"{name}_sum {self.total:.6f}"
        )
        out.append(
            f"{name}_count{{{labels}}} {self.count}" if labels else f"{name}_count {self.count}"
        )
        return out


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class Metrics:
    runs: Counter[tuple[str, str]] = field(default_factory=Counter)
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    stored: Counter[str] = field(default_factory=Counter)
    reloads: Counter[str] = field(default_factory=Counter)
    durations: dict[str, Histogram] = field(default_factory=dict)
    lateness: Histogram = field(default_factory=lambda: Histogram(LATENESS_BUCKETS))

    def run_finished(self, pipeline: str, status: str, seconds: float, stats: RunStats) -> None:
        self.runs[pipeline, status] += 1
        hist = self.durations.get(pipeline)
        if hist is None:
            hist = self.durations[pipeline] = Histogram(DURATION_BUCKETS)
        hist.observe(seconds)
        self.stored[pipeline] += stats.stored
        for name, conn in stats.connectors.items():
            self.retries[name] += conn.retries
            for code, n in conn.statuses.items():
                self.requests[name, str(code)] += n

    def render(self, running: dict[str, int]) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, doc: str) -> None:
            lines.append(f"# HELP {name} {doc}")
            lines.append(f"# TYPE {name} {kind}")

        family("podium_runs_total", "counter", "Finished scheduled runs by pipeline and status.")
        for (pipeline, status), n in sorted(self.runs.items()):
            lines.append(
                f'podium_runs_total{{pipeline="{_label(pipeline)}",status="{status}"}} {n}'
            )
        family("podium_runs_running", "gauge", "Runs in progress on this node.")
        for pipeline, n in sorted(running.items()):
            lines.append(f'podium_runs_running{{pipeline="{_label(pipeline)}"}} {n}')
        family("podium_fires_skipped_total", "counter", "Fires that started no run, by reason.")
        for (pipeline, reason), n in sorted(self.skipped.items()):
            lines.append(
                f'podium_fires_skipped_total{{pipeline="{_label(pipeline)}",reason="{reason}"}} {n}'
            )
        family("podium_run_duration_seconds", "histogram", "Run wall time by pipeline.")
        for pipeline, hist in sorted(self.durations.items()):
            lines += hist.lines("podium_run_duration_seconds", f'pipeline="{_label(pipeline)}"')
        family("podium_fire_lateness_seconds", "histogram", "Run start minus scheduled time.")
        lines += self.lateness.lines("podium_fire_lateness_seconds", "")
        family("podium_requests_total", "counter", "HTTP requests by connector and status code.")
        for (connector, code), n in sorted(self.requests.items()):
            lines.append(
                f'podium_requests_total{{connector="{_label(connector)}",code="{code}"}} {n}'
            )
        family("podium_retries_total", "counter", "Retried requests by connector.")
        for connector, n in sorted(self.retries.items()):
            lines.append(f'podium_retries_total{{connector="{_label(connector)}"}} {n}')
        family("podium_records_stored_total", "counter", "Records stored by pipeline.")
        for pipeline, n in sorted(self.stored.items()):
            lines.append(f'podium_records_stored_total{{pipeline="{_label(pipeline)}"}} {n}')
        family("podium_reloads_total", "counter", "Config reloads by outcome.")
        for outcome, n in sorted(self.reloads.items()):
            lines.append(f'podium_reloads_total{{outcome="{outcome}"}} {n}')
        return "\n".join(lines) + "\n"
