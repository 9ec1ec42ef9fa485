"""podium's own tables: the run journal, and what keeps runs durable.

SQLAlchemy Core (podium's bookkeeping needs no ORM, and skipping it keeps start-up light).

``podium_runs``       one row per run: status, counters, its lease, its attempts
``podium_run_events`` what went wrong in a run without stopping it
``podium_check_results`` each check's outcome over a run
``podium_state``      small durable values per pipeline (incremental high-water marks)
``podium_checkpoints`` a run's progress through page chains still going on
``podium_items_done``  the fan-out items a run carried to an end, a list per commit —
                      both written in the same transaction as the rows they cover
``podium_dead_letters`` requests that failed for good and records that were rejected
``podium_saga_steps`` side effects a run performed, and their compensation

The monitoring tables (alert state, outbox, mutes, check history) are in
``_monitoring_schema``.

Unique keys do the concurrency control, on SQLite and PostgreSQL alike:
(pipeline, scheduled_for) — a fire delivered twice runs once; ``lock_key`` — a pipeline
whose overlap policy forbids it has one running run across every node;
(pipeline, idempotency_key) — a trigger sent twice starts one run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from podium.pipeline import StoreError

from ._types import UTCDateTime

RUN_STATUSES = ("running", "ok", "partial", "failed", "interrupted", "timed_out", "cancelled")
# How a run started: the daemon's fires (schedule, catch_up, backfill) and requests
# (manual: the command line, api: HTTP), `podium run` (cli), podium.run() (python), and
# a dead-letter replay.
RUN_TRIGGERS = ("schedule", "catch_up", "backfill", "manual", "api", "cli", "python", "replay")
# Counters of a run row, in the order the run summary prints them.
COUNTS = (
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


def as_dict(row: Any) -> dict[str, Any]:
    """A row as a dict keyed by plain ``str``: SQLAlchemy's keys are ``quoted_name``, a
    str subclass that orjson (every ``--json`` and the endpoint) refuses as a key."""
    return {str(key): value for key, value in row._mapping.items()}


def utcnow() -> datetime:
    return datetime.now(UTC)


metadata = sa.MetaData()

runs_table = sa.Table(
    "podium_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("pipeline", sa.String(200), nullable=False),
    # How the run started: cli, python, schedule, catch_up, manual, api, backfill, replay.
    sa.Column("trigger", sa.String(200), nullable=False),
    # Who runs it now: the daemon node id, or the host-pid of a command-line run.
    sa.Column("node", sa.String(160)),
    sa.Column("pid", sa.Integer),
    sa.Column("scheduled_for", UTCDateTime()),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    *(
        sa.Column(name, sa.Integer, nullable=False, default=0, server_default="0")
        for name in COUNTS
    ),
    sa.Column("error", sa.Text),
    sa.Column("dry_run", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("params", sa.JSON),
    sa.Column("stages", sa.JSON),
    # The run's failures grouped by cause (kind, cause, count, first occurrence).
    sa.Column("causes", sa.JSON),
    # Renewed by the running process with its counters; a run whose lease has expired
    # has lost its owner and is marked interrupted by whoever opens the journal next.
    sa.Column("heartbeat_at", UTCDateTime()),
    sa.Column("lease_expires_at", UTCDateTime()),
    # 1 + how many times the run was resumed; the history of each attempt.
    sa.Column("attempt", sa.Integer, nullable=False, default=1, server_default="1"),
    sa.Column("attempts", sa.JSON),
    # What the pipeline was when the run started: a resume refuses another definition.
    sa.Column("pipeline_hash", sa.String(64)),
    # The pipeline's name while a run that forbids overlap holds it; NULL otherwise.
    sa.Column("lock_key", sa.String(200)),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("replay_of", sa.String(32)),
    sa.Column("cancel_requested_at", UTCDateTime()),
    sa.UniqueConstraint("pipeline", "scheduled_for", name="uq_podium_runs_fire"),
    sa.CheckConstraint(
        "status IN (" + ", ".join(f"'{status}'" for status in RUN_STATUSES) + ")",
        name="ck_podium_runs_status",
    ),
    sa.Index("ix_podium_runs_pipeline_started", "pipeline", "started_at"),
    sa.Index("ix_podium_runs_status_lease", "status", "lease_expires_at"),
    # Indexes rather than table constraints: an older journal gains them with CREATE INDEX.
    sa.Index("uq_podium_runs_lock", "lock_key", unique=True),
    sa.Index("uq_podium_runs_idempotency", "pipeline", "idempotency_key", unique=True),
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
    sa.Column("cause", sa.Text),
    sa.Column("latency", sa.JSON),
)

state_table = sa.Table(
    "podium_state",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.JSON),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

checkpoints_table = sa.Table(
    "podium_checkpoints",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("stage", sa.String(200), primary_key=True),
    # The fan-out item: "#<index>" of a for_each, or a digest of the record it came from.
    sa.Column("item", sa.String(80), primary_key=True),
    # The run end that committed it: a store stage, or another stage nothing reads.
    sa.Column("sink", sa.String(200), primary_key=True),
    sa.Column("pages", sa.Integer, nullable=False, default=0),
    # Where the chain continues: the next request and the paginator's state.
    sa.Column("resume", sa.JSON),
    sa.Column("at", UTCDateTime(), nullable=False),
)

# One row per commit, not per item: a fan-out of thousands of single requests costs a
# handful of rows, and reading them back is a union of lists.
items_done_table = sa.Table(
    "podium_items_done",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), nullable=False, index=True),
    sa.Column("stage", sa.String(200), nullable=False),
    sa.Column("sink", sa.String(200), nullable=False),
    sa.Column("items", sa.JSON, nullable=False),
)

dead_letters_table = sa.Table(
    "podium_dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), nullable=False, index=True),
    sa.Column("pipeline", sa.String(200), nullable=False),
    sa.Column("stage", sa.String(200), nullable=False),
    # "request" (failed for good), "record" (rejected), "compensation" (could not undo)
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("item", sa.String(80)),
    sa.Column("page", sa.Integer),
    # The fan-out item's values (redacted): what a replay builds the request from.
    sa.Column("binding", sa.JSON),
    # The request as sent (redacted), for people; never used to send again.
    sa.Column("request", sa.JSON),
    sa.Column("record", sa.JSON),
    sa.Column("cause", sa.Text, nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("replayed_in", sa.String(32)),
)

saga_table = sa.Table(
    "podium_saga_steps",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("stage", sa.String(200), nullable=False),
    sa.Column("item", sa.String(80), nullable=False),
    # What undoes the step: a rendered request, or a callable with its record.
    sa.Column("compensation", sa.JSON, nullable=False),
    # done → compensated | failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("compensated_at", UTCDateTime()),
    sa.UniqueConstraint("run_id", "stage", "item", name="uq_podium_saga_item"),
)

JOURNAL_TABLES = [
    runs_table,
    events_table,
    checks_table,
    state_table,
    checkpoints_table,
    items_done_table,
    dead_letters_table,
    saga_table,
]


def create_tables(conn: Connection) -> None:
    """Create podium's tables; bring an older journal up to date.

    Columns added since an older podium are added (each is nullable or has a server
    default, so old rows stay valid), and so are the unique indexes; anything else is
    said plainly rather than failing later on a column the old table does not have.
    """
    # Defined on this module's metadata, in modules of their own.
    from ._control_schema import CONTROL_TABLES
    from ._monitoring_schema import MONITORING_TABLES

    tables = [*JOURNAL_TABLES, *MONITORING_TABLES, *CONTROL_TABLES]
    inspector = sa.inspect(conn)
    # One query for what exists: a table created here is current by construction, so only
    # the older ones are inspected (two queries each; a fresh file has none of them).
    existing = set(inspector.get_table_names())
    metadata.create_all(conn, tables=[t for t in tables if t.name not in existing])
    quote = conn.dialect.identifier_preparer.quote
    for table in tables:
        if table.name not in existing:
            continue
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
        indexes = {ix["name"] for ix in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn, checkfirst=True)
