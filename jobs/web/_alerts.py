"""The alerts page's document: open incidents, mutes, maintenance windows, the latest
notifications, and the alerts a mute can name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from podium.orchestrator.storage import Monitoring

from ._sources import Sources, problem

NOTIFICATIONS = 50


async def alerts_page(src: Sources, now: datetime) -> dict[str, Any]:
    config = src.plan().config
    monitoring = Monitoring(src.database)
    mutes = await monitoring.mutes(now)
    muted = {m["target"] for m in mutes}
    return {
        "generated_at": now,
        "node": src.node_id,
        "open": [
            {
                "alert": s["alert"],
                "subject": s["subject"],
                "pipeline": s["pipeline"],
                "label": s["label"],
                "incident": s["incident"],
                "opened_at": s["opened_at"],
                "failures": s["failures"],
                "last_cause": s["last_cause"],
                "last_run_id": s["last_run_id"],
                "last_outcome_at": s["last_outcome_at"],
                "next_reminder_at": s["next_reminder_at"],
                "muted": s["alert"] in muted or s["pipeline"] in muted,
            }
            for s in await monitoring.states(open_only=True)
        ],
        "mutes": [
            {
                "id": m["id"],
                "target": m["target"],
                "until": m["until"],
                "reason": m["reason"],
                "by": m["created_by"],
                "at": m["created_at"],
            }
            for m in mutes
        ],
        "maintenance": [
            {
                "name": name,
                "description": w.description,
                "kind": "recurring" if w.cron is not None else "one-off",
                "cron": w.cron,
                "duration_s": w.duration.total_seconds() if w.duration is not None else None,
                "timezone": w.timezone,
                "start": w.start,
                "end": w.end,
                "alerts": w.alerts,
                "pipelines": w.pipelines,
                "active": w.active(now),
            }
            for name, w in config.maintenance.items()
        ],
        "notifications": [
            {
                "id": n["id"],
                "alert": n["alert"],
                "label": n["label"],
                "pipeline": n["pipeline"],
                "kind": n["kind"],
                "incident": n["incident"],
                "cause": n["cause"],
                "run_id": n["run_id"],
                "at": n["at"],
                "status": n["status"],
                "attempts": n["attempts"],
                "sent_at": n["sent_at"],
                "last_error": n["last_error"],
                "delivered": n["delivered"] or [],
            }
            for n in await monitoring.notifications(NOTIFICATIONS)
        ],
        "alerts": [
            {"name": name, "problem": problem(entry), "muted": name in muted}
            for name, entry in config.alerts.items()
        ],
    }
