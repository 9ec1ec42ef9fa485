"""Check history's SQL: each check's current state, hourly summaries, and pruning.

Written in a run's final transaction, beside the raw ``podium_check_results`` rows:
``podium_check_status`` holds the latest result and since when it has held (what
``podium checks`` shows first), ``podium_check_hours`` one row per check and hour
(runs, passes, response-time histogram) — the summaries uptime and percentiles are
computed from, which outlive the raw rows when ``[history] keep`` prunes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from ..alerts import latency
from ._monitoring_schema import check_hours_table, check_status_table, run_hours_table
from ._schema import (
    as_dict,
    checkpoints_table,
    checks_table,
    events_table,
    items_done_table,
    runs_table,
    saga_table,
)

STATUS = check_status_table
HOURS = check_hours_table
RUN_HOURS = run_hours_table
_PRUNE_BATCH = 500


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def record_checks(
    conn: Connection, pipeline: str, run_id: str, at: datetime, checks: Iterable[dict[str, Any]]
) -> None:
    """Fold one run's check results into each check's state and its hour."""
    hour = hour_of(at)
    for check in checks:
        ok, name = bool(check["ok"]), check["name"]
        key = (STATUS.c.pipeline == pipeline) & (STATUS.c.name == name)
        current = conn.execute(select(STATUS).where(key).with_for_update()).first()
        # Runs of one pipeline may finish out of order (overlap = "parallel", a resumed
        # run): the state follows the latest result, not the latest write.
        latest = current is None or at >= current.last_at
        values: dict[str, Any] = {"target": check["target"]}
        if latest:
            values |= {"ok": ok, "last_at": at, "last_run_id": run_id}
            if current is None or bool(current.ok) != ok:
                values["since"] = at
        if ok and (current is None or not current.last_success_at or at > current.last_success_at):
            values["last_success_at"] = at
        if not ok and (
            current is None or not current.last_failure_at or at > current.last_failure_at
        ):
            values |= {
                "last_failure_at": at,
                "last_failure_run_id": run_id,
                "last_failure_cause": check.get("cause"),
            }
        if current is None:
            _insert_or_update(conn, STATUS, key, {"pipeline": pipeline, "name": name, **values})
        else:
            conn.execute(update(STATUS).where(key).values(**values))
        _add_to_hour(conn, pipeline, name, hour, ok, check.get("latency"))


def record_run(
    conn: Connection, pipeline: str, node: str | None, started_at: datetime, status: str
) -> None:
    """Count one ended run in its pipeline's, node's and start hour's summary."""
    key = (
        (RUN_HOURS.c.pipeline == pipeline)
        & (RUN_HOURS.c.node == (node or ""))
        & (RUN_HOURS.c.hour == hour_of(started_at))
        & (RUN_HOURS.c.status == status)
    )
    more = update(RUN_HOURS).where(key).values(runs=RUN_HOURS.c.runs + 1)
    if conn.execute(more).rowcount:
        return
    values = {"pipeline": pipeline, "node": node or "", "hour": hour_of(started_at)}
    if not _insert_or_update(conn, RUN_HOURS, key, {**values, "status": status, "runs": 1}):
        conn.execute(more)  # another transaction inserted the row first


def select_run_counts(
    conn: Connection, since: datetime | None, pipeline: str | None
) -> list[dict[str, Any]]:
    """Ended runs that started since ``since``'s hour, by pipeline, node and status."""
    runs = sa.func.sum(RUN_HOURS.c.runs).label("runs")
    query = select(RUN_HOURS.c.pipeline, RUN_HOURS.c.node, RUN_HOURS.c.status, runs).group_by(
        RUN_HOURS.c.pipeline, RUN_HOURS.c.node, RUN_HOURS.c.status
    )
    if since is not None:
        query = query.where(RUN_HOURS.c.hour >= hour_of(since))
    if pipeline is not None:
        query = query.where(RUN_HOURS.c.pipeline == pipeline)
    return [
        {**as_dict(r), "node": r.node or None, "runs": int(r.runs)} for r in conn.execute(query)
    ]


def _add_to_hour(
    conn: Connection, pipeline: str, name: str, hour: datetime, ok: bool, times: Any
) -> None:
    key = (HOURS.c.pipeline == pipeline) & (HOURS.c.name == name) & (HOURS.c.hour == hour)
    row = conn.execute(select(HOURS.c.latency).where(key).with_for_update()).first()
    if row is None:
        values = {
            "pipeline": pipeline,
            "name": name,
            "hour": hour,
            "runs": 1,
            "passed": int(ok),
            "latency": list(times) if times else None,
        }
        if _insert_or_update(conn, HOURS, key, values):
            return
        row = conn.execute(select(HOURS.c.latency).where(key).with_for_update()).one()
    merged = row.latency
    if times:
        merged = latency.merge(list(row.latency) if row.latency else latency.empty(), times)
    conn.execute(
        update(HOURS)
        .where(key)
        .values(runs=HOURS.c.runs + 1, passed=HOURS.c.passed + int(ok), latency=merged)
    )


def _insert_or_update(conn: Connection, table: sa.Table, key: Any, values: dict[str, Any]) -> bool:
    """Insert ``values``; True when inserted, False when another transaction inserted
    the row first (the caller then updates it)."""
    try:
        with conn.begin_nested():
            conn.execute(table.insert().values(**values))
    except IntegrityError:
        return False
    return True


def select_status(conn: Connection, pipeline: str | None) -> list[dict[str, Any]]:
    query = select(STATUS).order_by(STATUS.c.pipeline, STATUS.c.name)
    if pipeline is not None:
        query = query.where(STATUS.c.pipeline == pipeline)
    return [as_dict(r) for r in conn.execute(query)]


def select_hours(conn: Connection, pipeline: str | None, since: datetime) -> list[dict[str, Any]]:
    query = select(HOURS).where(HOURS.c.hour >= since).order_by(HOURS.c.hour)
    if pipeline is not None:
        query = query.where(HOURS.c.pipeline == pipeline)
    return [as_dict(r) for r in conn.execute(query)]


def prune(conn: Connection, runs_before: datetime, hours_before: datetime) -> dict[str, int]:
    """Delete finished runs that ended before ``runs_before`` with everything recorded
    for them, and hourly summaries older than ``hours_before``. Each pipeline's latest
    run stays (catch-up and ``podium status`` read it); interrupted runs may still be
    resumed and stay too."""
    latest = (
        select(runs_table.c.pipeline, sa.func.max(runs_table.c.started_at).label("started"))
        .group_by(runs_table.c.pipeline)
        .subquery()
    )
    old = (
        select(runs_table.c.id)
        .outerjoin(
            latest,
            (latest.c.pipeline == runs_table.c.pipeline)
            & (latest.c.started == runs_table.c.started_at),
        )
        .where(
            runs_table.c.finished_at.is_not(None)
            & (runs_table.c.finished_at < runs_before)
            & runs_table.c.status.not_in(("running", "interrupted"))
            & latest.c.pipeline.is_(None)
        )
        .limit(_PRUNE_BATCH)
    )
    runs = 0
    while ids := [r for (r,) in conn.execute(old)]:
        for table in (events_table, checks_table, items_done_table, checkpoints_table, saga_table):
            conn.execute(delete(table).where(table.c.run_id.in_(ids)))
        runs += int(conn.execute(delete(runs_table).where(runs_table.c.id.in_(ids))).rowcount)
    hours = conn.execute(delete(HOURS).where(HOURS.c.hour < hours_before)).rowcount
    hours += conn.execute(delete(RUN_HOURS).where(RUN_HOURS.c.hour < hours_before)).rowcount
    return {"runs": runs, "hours": int(hours)}
