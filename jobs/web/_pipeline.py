"""The pipeline page's document: the pipeline at a glance, its runs page by page, the
series its plots draw, and its checks with their hourly history."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from podium.orchestrator import Journal
from podium.orchestrator.alerts import WINDOWS, latency, window_start
from podium.orchestrator.storage import Controls, Monitoring
from podium.pipeline import Pipeline

from ._overview import RECENT, pipeline_summary
from ._sources import NotFound, Sources, check_summaries, counts_by_pipeline, duration, run_brief

PER_PAGE = 25
SERIES = 100  # runs the duration and stored plots draw
HOURS = 48  # hours of each check's uptime bars and response-time plot


async def pipeline_page(src: Sources, name: str, page: int, now: datetime) -> dict[str, Any]:
    plan, db = src.plan(), src.database
    entry = plan.config.pipelines.get(name)
    if entry is None:
        known = ", ".join(plan.config.pipelines) or "none"
        raise NotFound(f"no pipeline {name!r} in the config (pipelines: {known})")
    journal, monitoring = Journal(db), Monitoring(db)
    recent = [r.model_dump() for r in await journal.runs(name, max(SERIES, RECENT))]
    day, week = window_start(now, WINDOWS["24h"]), window_start(now, WINDOWS["7d"])
    run_counts = {
        "24h": counts_by_pipeline(await journal.run_counts(day, name)).get(name, {}),
        "7d": counts_by_pipeline(await journal.run_counts(week, name)).get(name, {}),
    }
    checks, hours = await check_summaries(monitoring, name, now)
    incidents = [i for i in await monitoring.states(open_only=True) if i["pipeline"] == name]
    paused = (await Controls(db).paused()).get(name)
    summary = pipeline_summary(
        name,
        entry,
        kind="monitor" if name in plan.config.monitors else "pipeline",
        runs=recent[:RECENT],
        checks=checks,
        run_counts=run_counts,
        incidents=len(incidents),
        paused=paused,
        scheduler=await src.next_fires(),
        now=now,
    )
    total = await journal.count_runs(name)
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(1, page), pages)
    listed = await journal.runs(name, PER_PAGE, offset=(page - 1) * PER_PAGE)
    first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    return {
        "generated_at": now,
        "node": src.node_id,
        "pipeline": summary,
        "stages": _stages(entry),
        "counts": {"total": total, "7d": dict(sorted(run_counts["7d"].items()))},
        "runs": {
            "page": page,
            "pages": pages,
            "per_page": PER_PAGE,
            "total": total,
            "rows": [_listed(r.model_dump()) for r in listed],
        },
        "series": [
            {
                "id": r["id"],
                "status": r["status"],
                "started_at": r["started_at"],
                "duration_s": duration(r),
                "stored": r["stored"],
            }
            for r in reversed(recent[:SERIES])
        ],
        "checks": [
            {
                **c.as_json(),
                "hours": _hours(hours, c.name, first_hour),
            }
            for c in checks
        ],
        "incidents": [
            {
                "alert": i["alert"],
                "label": i["label"],
                "opened_at": i["opened_at"],
                "last_cause": i["last_cause"],
            }
            for i in incidents
        ],
    }


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    return {**run_brief(row), "attempt": row["attempt"], "checks_failed": row["checks_failed"]}


def _stages(entry: object) -> list[dict[str, str]]:
    if not isinstance(entry, Pipeline):
        return []
    return [{"name": s.name, "kind": s.kind} for s in entry.stages]


def _hours(rows: list[dict[str, Any]], check: str, first: datetime) -> list[dict[str, Any]]:
    """The check's last ``HOURS`` hours, oldest first; an hour without runs has 0 runs
    and no uptime or response times."""
    by_hour = {r["hour"]: r for r in rows if r["name"] == check and r["hour"] >= first}
    out = []
    for n in range(HOURS):
        hour = first + timedelta(hours=n)
        row = by_hour.get(hour)
        times = list(row["latency"]) if row is not None and row["latency"] else None
        runs = int(row["runs"]) if row is not None else 0
        passed = int(row["passed"]) if row is not None else 0
        out.append(
            {
                "hour": hour,
                "runs": runs,
                "passed": passed,
                "uptime": passed / runs if runs else None,
                "p50_ms": _ms(latency.percentile(times, 0.5)) if times else None,
                "p95_ms": _ms(latency.percentile(times, 0.95)) if times else None,
            }
        )
    return out


def _ms(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
