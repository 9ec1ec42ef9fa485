"""A pipeline at a glance: its state, its uptime, its next fire — pure functions of what
the journal holds, shared by the overview and the pipeline page.

State, first that applies: ``invalid`` (its config table is broken), ``paused`` (by the
config or by hand), ``running`` (a run of it is going on any node), ``failing`` (the
latest run that ended ok, partial, failed or timed out was failed or timed out, or one
of its checks fails now), ``passing`` (it was ok or partial), ``idle`` (no such run yet).
Interrupted and cancelled runs decide nothing: a node died or a person stopped it.

Uptime over a window (24 h, 7 d: whole hours, as ``podium checks`` counts them) is about
availability: a pipeline with response checks (every monitor has one, ``up``) is up when
they pass — passed results over all results of its response checks in the window; any
other pipeline is up when its runs succeed — runs that ended ok or partial over the runs
that ended ok, partial, failed or timed out. Record and run checks judge the data, not
whether the API answered, so they do not count towards uptime (a failing one still makes
the pipeline ``failing``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from podium.orchestrator.alerts import CheckSummary
from podium.pipeline import Schedule

from .._slots import next_slot

DECIDING = ("ok", "partial", "failed", "timed_out")
GOOD = ("ok", "partial")
BAD = ("failed", "timed_out")
SHOWN_WINDOWS = ("24h", "7d")


def state(
    *,
    paused: bool,
    runs: Sequence[Mapping[str, Any]],
    checks: Iterable[CheckSummary],
    invalid: bool = False,
) -> str:
    """The pipeline's state from its latest runs (newest first) and its checks."""
    if invalid:
        return "invalid"
    if paused:
        return "paused"
    if any(r["status"] == "running" for r in runs):
        return "running"
    deciding = next((r for r in runs if r["status"] in DECIDING), None)
    failing_check = any(not c.ok for c in checks)
    if failing_check or (deciding is not None and deciding["status"] in BAD):
        return "failing"
    return "idle" if deciding is None else "passing"


def uptime(
    checks: list[CheckSummary], run_counts: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, Any]]:
    """``{"24h": {ratio, good, total, basis}, "7d": …}``; ``run_counts`` maps a window
    to the pipeline's runs in it by status."""
    checks = [c for c in checks if c.target == "responses"]
    out: dict[str, dict[str, Any]] = {}
    for window in SHOWN_WINDOWS:
        if checks:
            total = sum(c.windows[window].runs for c in checks)
            good = sum(c.windows[window].passed for c in checks)
            basis = "checks"
        else:
            counts = run_counts.get(window, {})
            total = sum(counts.get(s, 0) for s in DECIDING)
            good = sum(counts.get(s, 0) for s in GOOD)
            basis = "runs"
        ratio = good / total if total else None
        out[window] = {"ratio": ratio, "good": good, "total": total, "basis": basis}
    return out


def next_fire(
    schedule: Schedule | None,
    *,
    paused: bool,
    scheduler: Mapping[str, datetime | None],
    name: str,
    runs: Sequence[Mapping[str, Any]],
    now: datetime,
) -> tuple[datetime | None, str | None]:
    """When the pipeline fires next and who says so: ``scheduler`` (this node's
    scheduler, which with a shared store knows every node's schedules) or ``computed``
    (from the schedule and the last fire in the journal); (None, None) when it will not
    fire on its own."""
    if schedule is None or paused:
        return None, None
    known = scheduler.get(name)
    if known is not None:
        return known, "scheduler"
    fires = [r["scheduled_for"] for r in runs if r.get("scheduled_for") is not None]
    computed = next_slot(schedule, now, max(fires) if fires else None)
    return (computed, "computed") if computed is not None else (None, None)
