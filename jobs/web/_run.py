"""The run page's document: one run with everything recorded alongside it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from podium.orchestrator import Journal
from podium.orchestrator.storage import COUNTS
from podium.pipeline import RunNotFound

from ._sources import NotFound, Sources, duration

EVENTS = 200  # events listed (a run keeps at most 500)
DEAD_LETTERS = 100
RUN_FIELDS = (
    "id", "pipeline", "status", "trigger", "node", "pid", "scheduled_for", "started_at",
    "finished_at", "attempt", "error", "dry_run", "params", "replay_of", "idempotency_key",
    "cancel_requested_at", "heartbeat_at",
)  # fmt: skip


async def run_page(src: Sources, run_id: str, now: datetime) -> dict[str, Any]:
    journal = Journal(src.database)
    try:
        run, events, checks = await journal.run(run_id)
    except RunNotFound as exc:
        raise NotFound(str(exc)) from None
    steps = await journal.steps(run.id)
    letters = await journal.dead_letters(run.id, limit=DEAD_LETTERS)
    row = run.model_dump()
    return {
        "generated_at": now,
        "node": src.node_id,
        "run": {
            **{key: row[key] for key in RUN_FIELDS},
            "duration_s": duration(row),
            "counts": {name: row[name] for name in COUNTS},
        },
        "stages": [
            {
                "name": name,
                "kind": stage.get("kind", ""),
                "in": stage.get("in"),
                "out": stage.get("out"),
                "requests": stage.get("requests"),
                "failed": stage.get("failed", 0),
                "rejected": stage.get("rejected", 0),
            }
            for name, stage in run.stages.items()
        ],
        "causes": [
            {
                "kind": c.get("kind"),
                "cause": c.get("cause"),
                "count": c.get("count", 1),
                "first": c.get("first"),
                "excerpt": c.get("excerpt"),
            }
            for c in run.causes
        ],
        "checks": [
            {
                "name": c.name,
                "on": c.target,
                "expect": c.expect,
                "severity": c.severity,
                "ok": c.ok,
                "passed": c.passed,
                "failed": c.failed,
                "cause": c.cause,
                "samples": c.samples,
            }
            for c in checks
        ],
        "events": {
            "total": len(events),
            "rows": [
                {"at": e.at, "stage": e.stage, "kind": e.kind, "message": e.message}
                for e in events[:EVENTS]
            ],
        },
        "dead_letters": [
            {
                "id": d.id,
                "stage": d.stage,
                "kind": d.kind,
                "item": d.item,
                "page": d.page,
                "request": _request_line(d.request),
                "record": d.record,
                "cause": d.cause,
                "status": d.status,
                "attempts": d.attempts,
                "at": d.at,
                "replayed_in": d.replayed_in,
            }
            for d in letters
        ],
        "steps": [
            {
                "seq": s.seq,
                "stage": s.stage,
                "item": s.item,
                "undo": _undo(s.compensation),
                "status": s.status,
                "attempts": s.attempts,
                "error": s.error,
                "at": s.at,
                "compensated_at": s.compensated_at,
            }
            for s in steps
        ],
        "attempts": [
            *(
                {
                    "attempt": a.get("attempt"),
                    "node": a.get("node"),
                    "started_at": a.get("started_at"),
                    "ended_at": a.get("ended_at"),
                    "cause": a.get("cause"),
                    "requests": a.get("requests"),
                    "stored": a.get("stored"),
                }
                for a in run.attempts
            ),
            {
                "attempt": run.attempt,
                "node": run.node,
                "started_at": run.attempts[-1]["resumed_at"] if run.attempts else run.started_at,
                "ended_at": run.finished_at,
                "cause": run.error if run.status != "ok" else None,
                "requests": run.requests,
                "stored": run.stored,
            },
        ],
    }


def _request_line(request: dict[str, Any] | None) -> str | None:
    """The request as a person reads it (it was redacted before it was stored)."""
    if not request:
        return None
    return f"{request.get('method', '')} {request.get('url', '')}".strip() or None


def _undo(spec: dict[str, Any]) -> str:
    return f"{spec.get('method', '')} {spec.get('path', '')}".strip() or str(spec.get("error", ""))
