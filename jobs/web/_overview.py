"""The overview's document: every pipeline and monitor, the cluster's nodes, the pauses,
the latest runs — what ``/`` shows and ``/.json`` answers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from podium.orchestrator import Journal
from podium.orchestrator.alerts import WINDOWS, CheckSummary, window_start
from podium.orchestrator.storage import Controls, Monitoring, RunRow
from podium.pipeline import Pipeline

from . import _health as health
from ._sources import Sources, check_summaries, counts_by_pipeline, duration, problem, run_brief

RECENT = 50  # runs in each pipeline's bar
LATEST = 20  # runs in the cluster's list
MAX_RUNNING = 1000
NODES_WITHIN = timedelta(hours=24)  # nodes seen since are listed
# Heartbeats come every 5 s: three missed, and the node is taken for lost.
NODE_UP = timedelta(seconds=15)


async def overview(src: Sources, now: datetime) -> dict[str, Any]:
    plan, db = src.plan(), src.database
    journal, monitoring, controls = Journal(db), Monitoring(db), Controls(db)
    day, week = window_start(now, WINDOWS["24h"]), window_start(now, WINDOWS["7d"])
    latest: dict[str, list[dict[str, Any]]] = {}
    rows = await journal.latest_runs(list(plan.config.pipelines), RECENT)
    for row in rows:
        latest.setdefault(row["pipeline"], []).append(row)
    running = await journal.runs(statuses=("running",), limit=MAX_RUNNING)
    counts_day = await journal.run_counts(day)
    counts_week = await journal.run_counts(week)
    checks, _hours = await check_summaries(monitoring, None, now)
    incidents = await monitoring.states(open_only=True)
    paused = await controls.paused()
    scheduler = await src.next_fires()
    by_window = {"24h": counts_by_pipeline(counts_day), "7d": counts_by_pipeline(counts_week)}
    summaries = [
        pipeline_summary(
            name,
            entry,
            kind="monitor" if name in plan.config.monitors else "pipeline",
            runs=latest.get(name, []),
            checks=[c for c in checks if c.pipeline == name],
            run_counts={w: counts.get(name, {}) for w, counts in by_window.items()},
            incidents=sum(1 for i in incidents if i["pipeline"] == name),
            paused=paused.get(name),
            scheduler=scheduler,
            now=now,
        )
        for name, entry in plan.config.pipelines.items()
    ]
    return {
        "generated_at": now,
        "node": src.node_id,
        "pipelines": [s for s in summaries if s["kind"] == "pipeline"],
        "monitors": [s for s in summaries if s["kind"] == "monitor"],
        "open_incidents": len(incidents),
        "paused": [
            {"pipeline": name, "reason": p["reason"], "by": p["by"], "at": p["at"]}
            for name, p in sorted(paused.items())
        ],
        "nodes": _nodes(await controls.nodes(NODES_WITHIN), counts_day, running, now),
        # The newest of every pipeline's latest runs are the newest runs of them all.
        "latest_runs": [
            run_brief(r) for r in sorted(rows, key=lambda r: r["started_at"], reverse=True)
        ][:LATEST],
    }


def pipeline_summary(
    name: str,
    entry: object,
    *,
    kind: str,
    runs: list[dict[str, Any]],
    checks: list[CheckSummary],
    run_counts: Mapping[str, Mapping[str, int]],
    incidents: int,
    paused: Mapping[str, Any] | None,
    scheduler: Mapping[str, datetime | None],
    now: datetime,
) -> dict[str, Any]:
    """One pipeline at a glance; ``runs`` are its latest, newest first."""
    pipeline = entry if isinstance(entry, Pipeline) else None
    schedule = pipeline.schedule if pipeline is not None else None
    is_paused = paused is not None or (schedule is not None and schedule.paused)
    fire, source = health.next_fire(
        schedule, paused=is_paused, scheduler=scheduler, name=name, runs=runs, now=now
    )
    return {
        "name": name,
        "kind": kind,
        "description": pipeline.description if pipeline is not None else "",
        "problem": problem(entry),
        "schedule": schedule.describe() if schedule is not None else None,
        "state": health.state(paused=is_paused, runs=runs, checks=checks, invalid=pipeline is None),
        "paused": is_paused,
        "paused_reason": (paused or {}).get("reason")
        or ("paused = true in its schedule" if schedule is not None and schedule.paused else None),
        "running": sum(1 for r in runs if r["status"] == "running"),
        "last_run": run_brief(runs[0]) if runs else None,
        "next_fire": fire,
        "next_fire_from": source,
        "recent": [
            {
                "id": r["id"],
                "status": r["status"],
                "started_at": r["started_at"],
                "duration_s": duration(r),
            }
            for r in reversed(runs[:RECENT])
        ],
        "uptime": health.uptime(checks, run_counts),
        "checks": len(checks),
        "checks_failing": sum(1 for c in checks if not c.ok),
        "open_incidents": incidents,
    }


def _nodes(
    rows: list[dict[str, Any]],
    day: list[dict[str, Any]],
    running_runs: list[RunRow],
    now: datetime,
) -> list[dict[str, Any]]:
    runs_24h: dict[str | None, int] = {}
    for row in day:
        runs_24h[row["node"]] = runs_24h.get(row["node"], 0) + int(row["runs"])
    running: dict[str | None, int] = {}
    for run in running_runs:
        running[run.node] = running.get(run.node, 0) + 1
    out = []
    for row in rows:
        if row["stopped_at"] is not None:
            node_state = "stopped"
        else:
            node_state = "up" if now - row["last_seen"] <= NODE_UP else "lost"
        node = row["node_id"]
        out.append(
            {
                "node_id": node,
                "state": node_state,
                "host": row["host"],
                "port": row["port"],
                "pid": row["pid"],
                "version": row["version"],
                "started_at": row["started_at"],
                "last_seen": row["last_seen"],
                "stopped_at": row["stopped_at"],
                "runs_24h": runs_24h.get(node, 0),
                "running": running.get(node, 0),
            }
        )
    return out
