"""The run journal: one row per run, its events, and its check results.

``podium_runs`` has a unique key on (pipeline, scheduled_for) so a scheduled fire that
is delivered twice runs once; manual runs leave ``scheduled_for`` empty. Events are
buffered and written in batches so a storm of failures cannot slow the run down.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, desc, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from pipeline import RunNotFound

from ._database import store_error

RUN_STATUSES = ("running", "ok", "partial", "failed", "interrupted", "timed_out")
# A run keeps at most this many detailed events; the counts stay exact beyond it.
MAX_EVENTS_PER_RUN = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


class RunRow(SQLModel, table=True):
    __tablename__ = "podium_runs"
    __table_args__ = (
        UniqueConstraint("pipeline", "scheduled_for", name="uq_podium_runs_fire"),
        Index("ix_podium_runs_pipeline_started", "pipeline", "started_at"),
    )

    id: str = Field(primary_key=True, max_length=32)
    pipeline: str = Field(max_length=200)
    trigger: str = Field(default="cli", max_length=32)
    scheduled_for: datetime | None = None
    status: str = Field(default="running", max_length=16)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    requests: int = 0
    retries: int = 0
    failed_requests: int = 0
    records_in: int = 0
    records_out: int = 0
    rejected: int = 0
    stored: int = 0
    checks_failed: int = 0
    error: str | None = None
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    stages: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class RunEventRow(SQLModel, table=True):
    __tablename__ = "podium_run_events"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, max_length=32)
    at: datetime = Field(default_factory=utcnow)
    stage: str | None = Field(default=None, max_length=200)
    kind: str = Field(max_length=32)
    message: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class CheckResultRow(SQLModel, table=True):
    __tablename__ = "podium_check_results"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, max_length=32)
    check: str = Field(max_length=200)
    on: str = Field(max_length=16)
    expect: str
    severity: str = Field(max_length=8)
    passed: int = 0
    failed: int = 0
    ok: bool = True
    samples: list[Any] = Field(default_factory=list, sa_column=Column(JSON))


class StateRow(SQLModel, table=True):
    """Small durable values per pipeline, e.g. incremental cursors' high-water marks."""

    __tablename__ = "podium_state"

    pipeline: str = Field(primary_key=True, max_length=200)
    key: str = Field(primary_key=True, max_length=200)
    value: Any = Field(default=None, sa_column=Column(JSON))
    updated_at: datetime = Field(default_factory=utcnow)


JOURNAL_TABLES = [t.__table__ for t in (RunRow, RunEventRow, CheckResultRow, StateRow)]  # type: ignore[attr-defined]


class DuplicateFire(Exception):
    """Another run already holds this (pipeline, scheduled_for) key."""


class Journal:
    """Reads and writes the journal tables on one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_tables(self) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(
                    lambda sync: SQLModel.metadata.create_all(sync, tables=JOURNAL_TABLES)
                )
        except SQLAlchemyError as exc:
            raise store_error(exc, "creating podium's journal tables") from None

    async def start(self, run: RunRow) -> None:
        """Insert the run's row; raises DuplicateFire when its fire key is taken."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(RunRow.__table__.insert().values(**_row(run)))  # type: ignore[attr-defined]
        except IntegrityError:
            raise DuplicateFire(run.pipeline, run.scheduled_for) from None
        except SQLAlchemyError as exc:
            raise store_error(exc, "recording the run start") from None

    async def finish(
        self, run: RunRow, events: list[RunEventRow], checks: list[CheckResultRow]
    ) -> None:
        table = RunRow.__table__  # type: ignore[attr-defined]
        values = _row(run)
        values.pop("id")
        try:
            async with self.engine.begin() as conn:
                await conn.execute(update(table).where(table.c.id == run.id).values(**values))
                if events:
                    await conn.execute(RunEventRow.__table__.insert(), [_row(e) for e in events])  # type: ignore[attr-defined]
                if checks:
                    await conn.execute(CheckResultRow.__table__.insert(), [_row(c) for c in checks])  # type: ignore[attr-defined]
        except SQLAlchemyError as exc:
            raise store_error(exc, "recording the run result") from None

    async def runs(self, pipeline: str | None = None, limit: int = 20) -> list[RunRow]:
        query = select(RunRow).order_by(desc(RunRow.started_at)).limit(limit)
        if pipeline:
            query = query.where(RunRow.pipeline == pipeline)
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [RunRow.model_validate(dict(r._mapping)) for r in result]

    async def run(self, run_id: str) -> tuple[RunRow, list[RunEventRow], list[CheckResultRow]]:
        """A run by id or unique id prefix, with its events and check results."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(RunRow).where(RunRow.id.startswith(run_id)).limit(2))  # type: ignore[attr-defined]
            ).all()
            if not rows:
                raise RunNotFound(f"no run with id {run_id!r}")
            if len(rows) > 1:
                raise RunNotFound(f"run id prefix {run_id!r} is ambiguous; give more characters")
            run = RunRow.model_validate(dict(rows[0]._mapping))
            events = (
                await conn.execute(
                    select(RunEventRow).where(RunEventRow.run_id == run.id).order_by(RunEventRow.id)
                )
            ).all()
            checks = (
                await conn.execute(
                    select(CheckResultRow)
                    .where(CheckResultRow.run_id == run.id)
                    .order_by(CheckResultRow.id)
                )
            ).all()
        return (
            run,
            [RunEventRow.model_validate(dict(e._mapping)) for e in events],
            [CheckResultRow.model_validate(dict(c._mapping)) for c in checks],
        )


def _row(model: SQLModel) -> dict[str, Any]:
    data = {k: getattr(model, k) for k in type(model).model_fields}
    if data.get("id") is None:
        data.pop("id", None)
    return data
