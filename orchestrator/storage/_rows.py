"""The journal's rows as pydantic models: what the engine writes and the CLI reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._schema import utcnow


class _Row(BaseModel):
    model_config = ConfigDict(validate_assignment=False)


class RunRow(_Row):
    """A run as recorded in ``podium_runs``."""

    id: str
    pipeline: str
    trigger: str = "cli"
    node: str | None = None
    pid: int | None = None
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
    lease_expires_at: datetime | None = None
    attempt: int = 1
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    pipeline_hash: str | None = None
    lock_key: str | None = None
    idempotency_key: str | None = None
    replay_of: str | None = None
    cancel_requested_at: datetime | None = None


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
    # Why it failed, from its first failing sample (what was seen; what was expected).
    cause: str | None = None
    # Response checks: response times, as counts per bucket of alerts.latency.
    latency: list[int] | None = None


class DeadLetterRow(_Row):
    """A request that failed for good, or a record that was rejected, kept for a person
    to look at and for ``podium replay``."""

    id: int | None = None
    run_id: str
    pipeline: str
    stage: str
    kind: str  # "request", "record" or "compensation"
    item: str | None = None
    page: int | None = None
    binding: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    cause: str
    status: int | None = None
    attempts: int = 1
    at: datetime = Field(default_factory=utcnow)
    replayed_in: str | None = None


class SagaStepRow(_Row):
    """A side effect a run performed, and what undoes it."""

    run_id: str
    seq: int
    stage: str
    item: str
    compensation: dict[str, Any]
    status: str = "done"  # done → compensated | failed
    attempts: int = 0
    error: str | None = None
    at: datetime = Field(default_factory=utcnow)
    compensated_at: datetime | None = None


def row_values(model: BaseModel) -> dict[str, Any]:
    """A row model as the column values to write (an unset id is the database's to pick)."""
    data = {k: getattr(model, k) for k in type(model).model_fields}
    if data.get("id") is None:
        data.pop("id", None)
    return data
