"""Check history summarised: state, uptime over 24 h / 7 d / 30 d, response times.

Computed from the journal's hourly summaries (``podium_check_hours``), which outlive
the raw results: a window is whole hours — the current hour and the 23 (167, 719)
before it — and uptime is the share of the runs in it that passed the check. Response
time percentiles merge the hours' histograms (see ``_latency``: within 12 %).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import _latency as latency

WINDOWS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


@dataclass
class Window:
    runs: int = 0
    passed: int = 0

    @property
    def uptime(self) -> float | None:
        """Passed runs over all runs, 0–1; None without runs."""
        return self.passed / self.runs if self.runs else None


@dataclass
class CheckSummary:
    pipeline: str
    name: str
    target: str
    ok: bool
    since: datetime
    last_at: datetime
    last_run_id: str
    last_failure_at: datetime | None
    last_failure_cause: str | None
    last_failure_run_id: str | None
    windows: dict[str, Window] = field(default_factory=dict)
    p50_ms: float | None = None
    p95_ms: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "check": self.name,
            "on": self.target,
            "state": "passing" if self.ok else "failing",
            "since": self.since.isoformat(),
            "last_run": {"id": self.last_run_id, "at": self.last_at.isoformat()},
            "uptime": {
                name: {"ratio": w.uptime, "runs": w.runs, "passed": w.passed}
                for name, w in self.windows.items()
            },
            "response_ms_24h": {"p50": _round(self.p50_ms), "p95": _round(self.p95_ms)},
            "last_failure": None
            if self.last_failure_at is None
            else {
                "at": self.last_failure_at.isoformat(),
                "run_id": self.last_failure_run_id,
                "cause": self.last_failure_cause,
            },
        }


def window_start(now: datetime, span: timedelta) -> datetime:
    """The first hour a window ending in ``now``'s hour covers."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    return hour - span + timedelta(hours=1)


def summarise(
    status: Iterable[Mapping[str, Any]], hours: Iterable[Mapping[str, Any]], now: datetime
) -> list[CheckSummary]:
    """One summary per check in ``status``, from the ``hours`` rows (at least 30 days')."""
    by_check: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in hours:
        by_check.setdefault((row["pipeline"], row["name"]), []).append(row)
    starts = {name: window_start(now, span) for name, span in WINDOWS.items()}
    out = []
    for row in status:
        summary = CheckSummary(
            pipeline=row["pipeline"],
            name=row["name"],
            target=row["target"],
            ok=bool(row["ok"]),
            since=row["since"],
            last_at=row["last_at"],
            last_run_id=row["last_run_id"],
            last_failure_at=row["last_failure_at"],
            last_failure_cause=row["last_failure_cause"],
            last_failure_run_id=row["last_failure_run_id"],
            windows={name: Window() for name in WINDOWS},
        )
        day = latency.empty()
        for hour in by_check.get((row["pipeline"], row["name"]), []):
            for name, start in starts.items():
                if hour["hour"] >= start:
                    summary.windows[name].runs += hour["runs"]
                    summary.windows[name].passed += hour["passed"]
            if hour["hour"] >= starts["24h"]:
                latency.merge(day, hour["latency"])
        summary.p50_ms = latency.percentile(day, 0.5)
        summary.p95_ms = latency.percentile(day, 0.95)
        out.append(summary)
    return out


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
