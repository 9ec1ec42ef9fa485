"""The run rows' SQL: start, heartbeat, finish, reap, claim, read.

Every function takes the transaction's ``Connection`` first (see ``Database.run``).
A run row belongs to one attempt at a time: writes name the attempt they are for and
change nothing once another process has taken the row over (``WHERE attempt = :n``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection, desc, select, update
from sqlalchemy.exc import IntegrityError

from ..alerts import AlertRule, Outcome
from ._alerts import apply_outcomes
from ._checkpoints import clear_progress
from ._history import record_checks, record_run
from ._rows import RunRow
from ._schema import (
    COUNTS,
    as_dict,
    checks_table,
    dead_letters_table,
    events_table,
    runs_table,
    utcnow,
)
from ._state import advance_marks

RUNS = runs_table
Conflict = Literal["fire", "lock", "idempotency"]


def insert_run(conn: Connection, values: dict[str, Any]) -> Conflict | None:
    """Insert a run row; which unique key another run already holds, if one does.

    A savepoint keeps a duplicate key from aborting the caller's transaction (PostgreSQL).
    """
    try:
        with conn.begin_nested():
            conn.execute(RUNS.insert().values(**values))
    except IntegrityError as exc:
        return _conflict(exc)
    return None


def _conflict(exc: IntegrityError) -> Conflict:
    # PostgreSQL names the index; SQLite names the columns.
    text = str(exc.orig)
    if "lock_key" in text or "uq_podium_runs_lock" in text:
        return "lock"
    if "idempotency" in text:
        return "idempotency"
    return "fire"


def holder(conn: Connection, pipeline: str, key: Conflict, value: Any) -> dict[str, Any] | None:
    """The run that holds a key another run wanted."""
    column = {"fire": RUNS.c.scheduled_for, "lock": RUNS.c.lock_key}.get(
        key, RUNS.c.idempotency_key
    )
    query = select(RUNS).where((RUNS.c.pipeline == pipeline) & (column == value)).limit(1)
    row = conn.execute(query).first()
    return as_dict(row) if row is not None else None


def heartbeat(
    conn: Connection, run_id: str, attempt: int, values: dict[str, Any]
) -> Literal["mine", "lost", "cancel"]:
    """Renew the lease and write the counters: ``lost`` when the run is no longer this
    attempt's (another process found its lease expired and took it), ``cancel`` when
    someone asked for it to be cancelled (``podium cancel``, on any node)."""
    mine = (RUNS.c.id == run_id) & (RUNS.c.attempt == attempt) & (RUNS.c.status == "running")
    query = update(RUNS).where(mine).values(**values).returning(RUNS.c.cancel_requested_at)
    row = conn.execute(query).first()
    if row is None:
        return "lost"
    return "cancel" if row[0] is not None else "mine"


def request_cancel(conn: Connection, run_id: str, now: datetime) -> dict[str, Any] | None:
    """Ask a running run to stop (its heartbeat sees it); the run's row, or None when no
    run has that id. A run that is not running is left as it is."""
    row = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
    if row is None:
        return None
    running = (RUNS.c.id == run_id) & (RUNS.c.status == "running")
    conn.execute(update(RUNS).where(running).values(cancel_requested_at=now))
    return as_dict(row)


# Built once: it runs with every batch a store writes.
_ADD_STORED = (
    update(RUNS)
    .where(RUNS.c.id == sa.bindparam("run_id"))
    .values(stored=RUNS.c.stored + sa.bindparam("rows", type_=sa.Integer))
)


def live_counts(run: RunRow) -> dict[str, Any]:
    """The counters a running run writes to its row (``stored`` is added by the store's
    own transactions, exactly)."""
    values = {name: getattr(run, name) for name in COUNTS if name != "stored"}
    values["stages"] = run.stages
    return values


def write_counts(conn: Connection, run: RunRow) -> None:
    """The run's counters, in the transaction that stores rows: a killed run's row then
    says what it had sent and read as of its last commit, beside the exact ``stored``."""
    conn.execute(_WRITE_COUNTS, {"_id": run.id, "_attempt": run.attempt, **live_counts(run)})


# Built once: it runs with a store's commits, and building an UPDATE costs more than
# running it (a chain commits hundreds of pages a second).
_WRITE_COUNTS = (
    update(RUNS)
    .where(
        (RUNS.c.id == sa.bindparam("_id"))
        & (RUNS.c.attempt == sa.bindparam("_attempt"))
        & (RUNS.c.status == "running")
    )
    .values({name: sa.bindparam(name) for name in (*COUNTS, "stages") if name != "stored"})
)


def add_stored(conn: Connection, run_id: str, rows: int) -> None:
    """Count rows stored, in the transaction that stored them: exact even after a kill."""
    conn.execute(_ADD_STORED, {"run_id": run_id, "rows": rows})


def finish_run(
    conn: Connection,
    run: dict[str, Any],
    events: list[dict[str, Any]],
    checks: list[dict[str, Any]],
    marks: dict[str, Any],
    dead_letters: list[dict[str, Any]],
    outcomes: list[tuple[AlertRule, Outcome]] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> list[int] | None:
    """Complete the run's row with its events, checks, dead letters and marks, fold its
    check results into their history and its outcomes into the alert states; the ids
    of the notifications that queued, or None (and nothing written) when the row is no
    longer this attempt's."""
    run_id, attempt = run.pop("id"), run["attempt"]
    run.pop("stored", None)  # kept exact by add_stored, in each store's own transaction
    mine = (RUNS.c.id == run_id) & (RUNS.c.attempt == attempt) & (RUNS.c.status == "running")
    if not conn.execute(update(RUNS).where(mine).values(**run)).rowcount:
        return None
    if not run.get("dry_run"):  # a dry run says nothing about the pipeline, as for checks
        record_run(conn, run["pipeline"], run["node"], run["started_at"], run["status"])
    if events:
        conn.execute(events_table.insert(), events)
    if checks:
        conn.execute(checks_table.insert(), checks)
    if dead_letters:
        conn.execute(dead_letters_table.insert(), dead_letters)
    if marks:
        advance_marks(conn, run["pipeline"], marks)
    if run["status"] != "interrupted":
        clear_progress(conn, run_id)  # progress matters only to a run that may be resumed
    now = run["finished_at"] or utcnow()
    if history:
        record_checks(conn, run["pipeline"], run_id, now, history)
    return apply_outcomes(conn, outcomes, now) if outcomes else []


def reap_abandoned(conn: Connection, now: datetime, grace: timedelta) -> list[dict[str, Any]]:
    """Mark interrupted every running run whose lease expired (its owner is gone), with
    the cause; the rows this call changed (another process may reap the same moment)."""
    expired = (RUNS.c.status == "running") & (
        (RUNS.c.lease_expires_at < now)
        | (RUNS.c.lease_expires_at.is_(None) & (RUNS.c.started_at < now - grace))
    )
    reaped = []
    for row in conn.execute(select(RUNS).where(expired)).all():
        run = as_dict(row)
        last = run["heartbeat_at"] or run["started_at"]
        owner = f"node {run['node']!r} (pid {run['pid']})" if run["node"] else "its process"
        cause = (
            f"abandoned: {owner} stopped renewing its lease at {last.isoformat()}; "
            "the process was killed or lost the database"
        )
        mine = (RUNS.c.id == run["id"]) & (RUNS.c.attempt == run["attempt"]) & expired
        values = {"status": "interrupted", "error": cause, "finished_at": now, "lock_key": None}
        if conn.execute(update(RUNS).where(mine).values(**values)).rowcount:
            reaped.append({**run, **values})
    return reaped


def interrupt_node(conn: Connection, node: str, pid: int, now: datetime) -> int:
    """A restarted node's own runs from before (another pid), interrupted at once rather
    than after their leases run out."""
    stale = (RUNS.c.node == node) & (RUNS.c.pid != pid) & (RUNS.c.status == "running")
    cause = f"node {node!r} restarted during the run"
    values = {"status": "interrupted", "error": cause, "finished_at": now, "lock_key": None}
    return int(conn.execute(update(RUNS).where(stale).values(**values)).rowcount)


def claim(
    conn: Connection, run_id: str, seen_attempt: int, values: dict[str, Any]
) -> dict[str, Any] | Conflict | None:
    """Take an interrupted run over for a new attempt: the updated row, ``"lock"`` when
    another run of the pipeline holds its overlap lock, None when someone was faster."""
    free = (RUNS.c.id == run_id) & (RUNS.c.attempt == seen_attempt)
    free &= RUNS.c.status == "interrupted"
    try:
        with conn.begin_nested():
            changed = conn.execute(update(RUNS).where(free).values(**values)).rowcount
    except IntegrityError as exc:
        return _conflict(exc)
    if not changed:
        return None
    return as_dict(conn.execute(select(RUNS).where(RUNS.c.id == run_id)).one())


@dataclass(frozen=True, slots=True)
class RunQuery:
    pipeline: str | None = None
    limit: int = 20
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    trigger: str | None = None
    triggers: tuple[str, ...] = ()
    finished_since: datetime | None = None
    offset: int = 0


def select_runs(conn: Connection, q: RunQuery) -> list[dict[str, Any]]:
    query = select(RUNS).order_by(desc(RUNS.c.started_at)).limit(q.limit).offset(q.offset)
    if q.pipeline:
        query = query.where(RUNS.c.pipeline == q.pipeline)
    if q.statuses:
        query = query.where(RUNS.c.status.in_(q.statuses))
    if q.since is not None:
        query = query.where(RUNS.c.started_at >= q.since)
    if q.finished_since is not None:
        query = query.where(RUNS.c.finished_at >= q.finished_since)
    if q.trigger:
        kind = RUNS.c.trigger.startswith(f"{q.trigger}:", autoescape=True)
        query = query.where((RUNS.c.trigger == q.trigger) | kind)
    if q.triggers:
        query = query.where(RUNS.c.trigger.in_(q.triggers))
    return [as_dict(r) for r in conn.execute(query)]


def count_runs(conn: Connection, pipeline: str) -> int:
    """How many runs of ``pipeline`` the journal holds (an index-only count)."""
    query = select(sa.func.count()).select_from(RUNS).where(RUNS.c.pipeline == pipeline)
    return int(conn.execute(query).scalar() or 0)


# What a listing of many runs shows; the JSON columns (stages, causes, attempts) stay out.
_BRIEF = (
    RUNS.c.id, RUNS.c.pipeline, RUNS.c.trigger, RUNS.c.node, RUNS.c.status,
    RUNS.c.scheduled_for, RUNS.c.started_at, RUNS.c.finished_at, RUNS.c.stored,
    RUNS.c.records_in, RUNS.c.requests, RUNS.c.failed_requests, RUNS.c.error,
)  # fmt: skip


def latest_runs(conn: Connection, pipelines: list[str], each: int) -> list[dict[str, Any]]:
    """The latest ``each`` runs of every one of ``pipelines``, newest first: one indexed
    read per pipeline ((pipeline, started_at)), so the cost does not grow with history."""
    out: list[dict[str, Any]] = []
    for name in pipelines:
        query = (
            select(*_BRIEF)
            .where(RUNS.c.pipeline == name)
            .order_by(desc(RUNS.c.started_at))
            .limit(each)
        )
        out.extend(as_dict(r) for r in conn.execute(query))
    return out


def last_fire(conn: Connection, pipeline: str) -> datetime | None:
    query = select(sa.func.max(RUNS.c.scheduled_for)).where(RUNS.c.pipeline == pipeline)
    value: datetime | None = conn.execute(query).scalar()
    return value


def fired(conn: Connection, pipeline: str, times: list[datetime]) -> set[datetime]:
    """Which of ``times`` already have a run (backfill and catch-up skip those)."""
    if not times:
        return set()
    query = select(RUNS.c.scheduled_for).where(
        (RUNS.c.pipeline == pipeline) & RUNS.c.scheduled_for.in_(times)
    )
    return {value for (value,) in conn.execute(query)}


def select_run(conn: Connection, run_id: str) -> list[tuple[Any, Any, Any]]:
    # autoescape: a % or _ in what the user typed is a character, not a wildcard.
    prefix = RUNS.c.id.startswith(run_id, autoescape=True)
    rows = conn.execute(select(RUNS).where(prefix).limit(2)).all()
    if len(rows) != 1:
        return [(None, None, None)] * len(rows)
    run = as_dict(rows[0])
    events = conn.execute(
        select(events_table).where(events_table.c.run_id == run["id"]).order_by(events_table.c.id)
    )
    checks = conn.execute(
        select(checks_table).where(checks_table.c.run_id == run["id"]).order_by(checks_table.c.id)
    )
    return [(run, [as_dict(e) for e in events], [as_dict(c) for c in checks])]
