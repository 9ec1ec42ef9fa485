"""Where the pages read from, and the pieces every page document shares.

Everything is read from the journal's tables on the shared database — runs, checks,
incidents, pauses, node heartbeats — never from this node's memory, so any node of a
cluster shows the whole cluster. The one thing asked of this node is the scheduler's
next fire times (its data store is shared with the other nodes when ``[scheduler] url``
is set); without it the next fire is computed from the schedule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from podium.orchestrator import Database
from podium.orchestrator.alerts import WINDOWS, CheckSummary, summarise, window_start
from podium.orchestrator.storage import Monitoring
from podium.pipeline import PodiumError

from .._models import Plan


class NotFound(PodiumError):
    """No pipeline or run by the name or id asked for (the page answers 404)."""


NextFires = Callable[[], Awaitable[Mapping[str, datetime | None]]]


async def no_scheduler() -> Mapping[str, datetime | None]:
    return {}


@dataclass
class Sources:
    database: Database
    plan: Callable[[], Plan]
    node_id: str
    next_fires: NextFires = no_scheduler


def duration(row: Mapping[str, Any]) -> float | None:
    finished = row.get("finished_at")
    return (finished - row["started_at"]).total_seconds() if finished is not None else None


def run_brief(row: Mapping[str, Any]) -> dict[str, Any]:
    """A run in a listing (fields documented in docs/status-page.md, "run brief")."""
    return {
        "id": row["id"],
        "pipeline": row["pipeline"],
        "status": row["status"],
        "trigger": row["trigger"],
        "node": row["node"],
        "scheduled_for": row["scheduled_for"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "duration_s": duration(row),
        "requests": row["requests"],
        "failed_requests": row["failed_requests"],
        "records_in": row["records_in"],
        "stored": row["stored"],
        "error": row["error"],
    }


def counts_by_pipeline(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """``run_counts`` rows summed over nodes: pipeline → status → runs."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        by_status = out.setdefault(row["pipeline"], {})
        by_status[row["status"]] = by_status.get(row["status"], 0) + int(row["runs"])
    return out


async def check_summaries(
    monitoring: Monitoring, pipeline: str | None, now: datetime
) -> tuple[list[CheckSummary], list[dict[str, Any]]]:
    """Every check's summary (state, uptime 24h/7d/30d, p50/p95), and the hourly rows
    they came from (30 days of them)."""
    status = await monitoring.check_status(pipeline)
    hours = await monitoring.check_hours(pipeline, window_start(now, max(WINDOWS.values())))
    return summarise(status, hours, now), hours


def problem(entry: object) -> str | None:
    """Why a config entry is unusable (it is an error instead of a model), or None."""
    return str(entry) if isinstance(entry, PodiumError) else None
