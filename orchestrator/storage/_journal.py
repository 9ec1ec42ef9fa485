"""The run journal: one row per run, its events, and its check results.

The tables are SQLAlchemy Core (podium's own bookkeeping needs no ORM, and skipping it
keeps every ``podium`` start-up ~0.2 s lighter); the rows are pydantic models.

``podium_runs`` has a unique key on (pipeline, scheduled_for) so a scheduled fire that
is delivered twice runs once; manual runs leave ``scheduled_for`` empty. Events are
buffered and written in batches so a storm of failures cannot slow the run down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, desc, select, update
from sqlalchemy.exc import IntegrityError

from podium.pipeline import DuplicateFire, RunNotFound, StoreError

from ._database import Database
from ._types import UTCDateTime

RUN_STATUSES = ("running", "ok", "partial", "failed", "interrupted", "timed_out")
# A run keeps at most this many detailed events; the counts stay exact beyond it.
MAX_EVENTS_PER_RUN = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


metadata = sa.MetaData()
_COUNTS = (
    "requests",
    "retries",
    "failed_requests",
    "skipped_requests",
    "records_in",
    "records_out",
    "rejected",
    "stored",
    "checks_failed",
)

runs_table = sa.Table(
    "podium_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("pipeline", sa.String(200), nullable=False),
    sa.Column("trigger", sa.String(200), nullable=False),
    sa.Column("scheduled_for", UTCDateTime()),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    *(
        sa.Column(name, sa.Integer, nullable=False, default=0, server_default="0")
        for name in _COUNTS
    ),
    sa.Column("error", sa.Text),
    sa.Column("dry_run", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("params", sa.JSON),
    sa.Column("stages", sa.JSON),
    # The run's failures grouped by cause (kind, cause, count, first occurrence).
    sa.Column("causes", sa.JSON),
    # Written by the run every few seconds with its counters, so a run that dies shows
    # what it had done.
    sa.Column("heartbeat_at", UTCDateTime()),
    sa.UniqueConstraint("pipeline", "scheduled_for", name="uq_podium_runs_fire"),
    sa.CheckConstraint(
        "status IN (" + ", ".join(f"'{status}'" for status in RUN_STATUSES) + ")",
        name="ck_podium_runs_status",
    ),
    sa.Index("ix_podium_runs_pipeline_started", "pipeline", "started_at"),
)

events_table = sa.Table(
    "podium_run_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("stage", sa.String(200)),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("detail", sa.JSON),
)

checks_table = sa.Table(
    "podium_check_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), nullable=False, index=True),
    # "name"/"target", not the stage's "check"/"on": both are reserved words in SQL.
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("expect", sa.Text, nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("passed", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("samples", sa.JSON),
)

# Small durable values per pipeline, e.g. incremental cursors' high-water marks.
state_table = sa.Table(
    "podium_state",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.JSON),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


class _Row(BaseModel):
    model_config = ConfigDict(validate_assignment=False)


class RunRow(_Row):
    """A run as recorded in ``podium_runs``."""

    id: str
    pipeline: str
    trigger: str = "cli"
    scheduled_for: datetime | None = None
    status: str = "running"
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    requests: int = 0
    retries: int = 0
    failed_requests: int = 0
    skipped_requests: int = 0
    records_in: int = 0
    records_out: int = 0
    rejected: int = 0
    stored: int = 0
    checks_failed: int = 0
    error: str | None = None
    dry_run: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    stages: dict[str, Any] = Field(default_factory=dict)
    causes: list[dict[str, Any]] = Field(default_factory=list)
    heartbeat_at: datetime | None = None


class RunEventRow(_Row):
    """Something that went wrong in a run without stopping it."""

    id: int | None = None
    run_id: str
    at: datetime = Field(default_factory=utcnow)
    stage: str | None = None
    kind: str
    message: str
    detail: dict[str, Any] = Field(default_factory=dict)


class CheckResultRow(_Row):
    """One check's outcome over a run."""

    id: int | None = None
    run_id: str
    name: str
    target: str
    expect: str
    severity: str
    passed: int = 0
    failed: int = 0
    ok: bool = True
    samples: list[Any] = Field(default_factory=list)


JOURNAL_TABLES = [runs_table, events_table, checks_table, state_table]


_RUNS, _EVENTS, _CHECKS = runs_table, events_table, checks_table


class Journal:
    """Reads and writes the journal tables of one database."""

    def __init__(self, database: Database) -> None:
        self.db = database

    async def create_tables(self) -> None:
        # Once per database, not per run: a daemon makes a Journal for every run.
        if not self.db.journal_ready:
            await self.db.run("creating podium's journal tables", _create_tables)
            self.db.journal_ready = True

    async def start(self, run: RunRow) -> None:
        """Insert the run's row; raises DuplicateFire when its fire key is taken."""
        await self.create_tables()
        if not await self.db.run("recording the run start", _insert_run, _row(run)):
            raise DuplicateFire(run.pipeline, run.scheduled_for)

    async def finish(
        self,
        run: RunRow,
        events: list[RunEventRow],
        checks: list[CheckResultRow],
        state: dict[str, Any] | None = None,
    ) -> None:
        """Complete the run's row; ``state`` values are written in the same transaction."""
        await self.db.run(
            "recording the run result",
            _finish_run,
            _row(run),
            [_row(e) for e in events],
            [_row(c) for c in checks],
            state or {},
        )

    async def heartbeat(self, run: RunRow) -> None:
        """Write a running run's counters as they are now (and when that was)."""
        run.heartbeat_at = utcnow()
        values = {name: getattr(run, name) for name in (*_COUNTS, "stages", "heartbeat_at")}
        await self.db.run("recording the run's progress", _heartbeat, run.id, values)

    async def state(self, pipeline: str, keys: list[str]) -> dict[str, Any]:
        """Stored ``podium_state`` values of ``pipeline`` by key (absent keys left out)."""
        await self.create_tables()
        return await self.db.run("reading pipeline state", _select_state, pipeline, keys)

    async def runs(
        self,
        pipeline: str | None = None,
        limit: int = 20,
        *,
        statuses: tuple[str, ...] = (),
        since: datetime | None = None,
        trigger: str | None = None,
    ) -> list[RunRow]:
        """Runs newest first; ``trigger`` matches a trigger or its kind (``daemon`` matches
        ``daemon:node-1``)."""
        await self.create_tables()
        query = RunQuery(pipeline, limit, statuses, since, trigger)
        rows = await self.db.run("reading runs", _select_runs, query)
        return [RunRow.model_validate(r) for r in rows]

    async def last_fire(self, pipeline: str) -> datetime | None:
        """The latest scheduled fire time recorded for ``pipeline`` (catch-up decisions)."""
        await self.create_tables()
        return await self.db.run("reading the last fire", _last_fire, pipeline)

    async def interrupt_stale(self, trigger: str, reason: str) -> int:
        """Mark runs of ``trigger`` still ``running`` as ``interrupted`` (a restarted node)."""
        await self.create_tables()
        return await self.db.run("closing stale runs", _interrupt_stale, trigger, reason)

    async def run(self, run_id: str) -> tuple[RunRow, list[RunEventRow], list[CheckResultRow]]:
        """A run by id or unique id prefix, with its events and check results."""
        await self.create_tables()
        found = await self.db.run("reading a run", _select_run, run_id)
        if not found:
            raise RunNotFound(f"no run with id {run_id!r} (see: podium runs)")
        if len(found) > 1:
            raise RunNotFound(f"run id prefix {run_id!r} is ambiguous; give more characters")
        run, events, checks = found[0]
        return (
            RunRow.model_validate(run),
            [RunEventRow.model_validate(e) for e in events],
            [CheckResultRow.model_validate(c) for c in checks],
        )


def _create_tables(conn: Connection) -> None:
    metadata.create_all(conn, tables=JOURNAL_TABLES)
    # Tables left by an older podium gain the columns added since (each is nullable or has
    # a server default, so old rows stay valid); anything else is said plainly rather than
    # failing later on a column the old table does not have.
    inspector = sa.inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    for table in JOURNAL_TABLES:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not (column.nullable or column.server_default is not None):
                raise StoreError(
                    f"table {table.name} was created by an older podium and lacks "
                    f"{column.name}; move that database aside (or drop podium's podium_* "
                    "tables) and run again"
                )
            ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} ADD COLUMN {ddl}")


def _insert_run(conn: Connection, values: dict[str, Any]) -> bool:
    # A savepoint keeps a duplicate key from aborting the caller's transaction (PostgreSQL).
    try:
        with conn.begin_nested():
            conn.execute(_RUNS.insert().values(**values))
    except IntegrityError:
        return False
    return True


def _finish_run(
    conn: Connection,
    run: dict[str, Any],
    events: list[dict[str, Any]],
    checks: list[dict[str, Any]],
    state: dict[str, Any],
) -> None:
    run_id = run.pop("id")
    conn.execute(update(_RUNS).where(_RUNS.c.id == run_id).values(**run))
    if events:
        conn.execute(_EVENTS.insert(), events)
    if checks:
        conn.execute(_CHECKS.insert(), checks)
    if state:
        advance_marks(conn, run["pipeline"], state)


def advance_marks(conn: Connection, pipeline: str, marks: dict[str, Any]) -> None:
    """Raise each high-water mark to ``marks[key]`` unless a greater one is stored: two runs
    of a pipeline finishing together both succeed, and the mark never moves backwards.

    The row is created first if absent (an insert that yields to a concurrent one), then
    read under a row lock (PostgreSQL; SQLite's write lock is already held) and raised.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    table, now = state_table, utcnow()
    for key, value in marks.items():
        row = {"pipeline": pipeline, "key": key, "value": value, "updated_at": now}
        conn.execute(insert(table).values(**row).on_conflict_do_nothing())
        where = (table.c.pipeline == pipeline) & (table.c.key == key)
        current = conn.execute(select(table.c.value).where(where).with_for_update()).scalar()
        if _greater(value, current):
            conn.execute(update(table).where(where).values(value=value, updated_at=now))


def _greater(new: Any, old: Any) -> bool:
    """Whether mark ``new`` is past ``old``; a mark of another type (the cursor field
    changed) replaces the old one, which cannot be compared with it."""
    if old is None:
        return True
    numbers = (int, float)
    comparable = (isinstance(new, numbers) and isinstance(old, numbers)) or type(new) is type(old)
    if not comparable or isinstance(new, bool | dict | list):
        return bool(new != old)
    return bool(new > old)


def _heartbeat(conn: Connection, run_id: str, values: dict[str, Any]) -> None:
    running = (_RUNS.c.id == run_id) & (_RUNS.c.status == "running")
    conn.execute(update(_RUNS).where(running).values(**values))


def _select_state(conn: Connection, pipeline: str, keys: list[str]) -> dict[str, Any]:
    query = select(state_table.c.key, state_table.c.value).where(
        (state_table.c.pipeline == pipeline) & state_table.c.key.in_(keys)
    )
    return {key: value for key, value in conn.execute(query)}


@dataclass(frozen=True, slots=True)
class RunQuery:
    pipeline: str | None = None
    limit: int = 20
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    trigger: str | None = None


def _select_runs(conn: Connection, q: RunQuery) -> list[dict[str, Any]]:
    query = select(_RUNS).order_by(desc(_RUNS.c.started_at)).limit(q.limit)
    if q.pipeline:
        query = query.where(_RUNS.c.pipeline == q.pipeline)
    if q.statuses:
        query = query.where(_RUNS.c.status.in_(q.statuses))
    if q.since is not None:
        query = query.where(_RUNS.c.started_at >= q.since)
    if q.trigger:
        kind = _RUNS.c.trigger.startswith(f"{q.trigger}:", autoescape=True)
        query = query.where((_RUNS.c.trigger == q.trigger) | kind)
    return [dict(r._mapping) for r in conn.execute(query)]


def _last_fire(conn: Connection, pipeline: str) -> datetime | None:
    query = select(sa.func.max(_RUNS.c.scheduled_for)).where(_RUNS.c.pipeline == pipeline)
    value: datetime | None = conn.execute(query).scalar()
    return value


def _interrupt_stale(conn: Connection, trigger: str, reason: str) -> int:
    stale = (_RUNS.c.trigger == trigger) & (_RUNS.c.status == "running")
    done = update(_RUNS).where(stale).values(status="interrupted", error=reason)
    return conn.execute(done.values(finished_at=utcnow())).rowcount


def _select_run(conn: Connection, run_id: str) -> list[tuple[Any, Any, Any]]:
    # autoescape: a % or _ in what the user typed is a character, not a wildcard.
    prefix = _RUNS.c.id.startswith(run_id, autoescape=True)
    rows = conn.execute(select(_RUNS).where(prefix).limit(2)).all()
    if len(rows) != 1:
        return [(None, None, None)] * len(rows)
    run = dict(rows[0]._mapping)
    events = conn.execute(
        select(_EVENTS).where(_EVENTS.c.run_id == run["id"]).order_by(_EVENTS.c.id)
    )
    checks = conn.execute(
        select(_CHECKS).where(_CHECKS.c.run_id == run["id"]).order_by(_CHECKS.c.id)
    )
    return [(run, [dict(e._mapping) for e in events], [dict(c._mapping) for c in checks])]


def _row(model: BaseModel) -> dict[str, Any]:
    data = {k: getattr(model, k) for k in type(model).model_fields}
    if data.get("id") is None:
        data.pop("id", None)
    return data
