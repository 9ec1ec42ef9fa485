"""The gateway's counters per connector: what was sent and how it was answered."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Upper bounds (seconds) of the exchange latency histogram, Prometheus' ``le``: from a
# loopback answer to a minute-long export. Fixed, so histograms of every run and every
# connector add up bucket by bucket; ``latency`` has one more slot for +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def _no_latencies() -> list[int]:
    return [0] * (len(LATENCY_BUCKETS) + 1)


@dataclass(slots=True)
class ConnectorStats:
    requests: int = 0
    retries: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
    # Answered exchanges by latency: ``latency[i]`` counts those that took more than
    # LATENCY_BUCKETS[i - 1] and at most LATENCY_BUCKETS[i]; the last slot, the slower
    # ones. Per bucket, not cumulative: the exposition sums them (Prometheus' buckets are).
    latency: list[int] = field(default_factory=_no_latencies)
    # Failed attempts by kind: a transport failure's ``kind`` (``timeout``,
    # ``connection``, ``tls``, ``dns``, ``bad_response``, ``request``), or an answer's
    # error status by class (``status_4xx``, ``status_5xx``). Retried attempts count too.
    errors: Counter[str] = field(default_factory=Counter)

    def merge(self, other: ConnectorStats) -> None:
        """Add ``other``'s counts to these: an accumulator over runs (the daemon's)."""
        self.requests += other.requests
        self.retries += other.retries
        self.failed += other.failed
        self.statuses.update(other.statuses)
        self.seconds += other.seconds
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]
        self.errors.update(other.errors)
