"""What people ask a daemon to do: run a pipeline now, backfill a range, pause, resume,
cancel a run, mute an alert — the one implementation behind the HTTP API, the page's
buttons and the command line.

Pauses, cancels and mutes are written to the journal, so they hold on every node of a
cluster and across restarts (a cancel reaches the run through its heartbeat, wherever
it runs). Triggers and backfills run on the node that was asked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson
from loguru import logger

from podium.orchestrator import Database, Journal
from podium.orchestrator.storage import Controls, Monitoring
from podium.pipeline import (
    ConfigError,
    DuplicateTrigger,
    PipelineBusy,
    PodiumError,
    parse_duration,
)

from ._adapter import Fire
from ._models import Plan
from ._pool import RunPool
from ._slots import slots_between

MAX_BACKFILL_SLOTS = 10_000
# Earlier is a typo, not history: no API holds data for it, and date arithmetic near
# year 1 overflows.
EARLIEST_BACKFILL = datetime(1970, 1, 1, tzinfo=UTC)
PROGRESS_EVERY = 0.5
TRIGGERS = ("api", "manual")


class OperationError(PodiumError):
    """A request that cannot be done as asked; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Operations:
    database: Database
    pool: RunPool
    plan: Callable[[], Plan]
    node_id: str

    def _pipeline(self, name: str) -> Any:
        try:
            return self.plan().config.pipeline(name)
        except PodiumError as exc:
            raise OperationError(str(exc), 404) from None

    async def trigger(
        self,
        pipeline: str,
        *,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        trigger: str = "api",
    ) -> dict[str, Any]:
        """Start a run of ``pipeline`` now; ``created`` is False when the idempotency key
        had started one already (that run is the answer)."""
        found = self._pipeline(pipeline)
        if trigger not in TRIGGERS:
            raise OperationError(f"trigger must be one of {', '.join(TRIGGERS)}", 400)
        unknown = sorted(set(params or {}) - set(found.params))
        if unknown:
            known = ", ".join(found.params) or "none"
            raise OperationError(
                f"pipeline {pipeline!r} has no parameter {', '.join(unknown)} "
                f"(parameters: {known})",
                400,
            )
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
            raise OperationError("an idempotency key is 1 to 200 characters", 400)
        now = datetime.now(UTC)
        fire = Fire(
            pipeline, None, now, trigger, params=params or None, idempotency_key=idempotency_key
        )
        try:
            run = await self.pool.start_now(fire)
        except DuplicateTrigger as exc:
            if exc.run_id is not None:
                await self._same_params(exc.run_id, found.params, params or {}, idempotency_key)
            return {"pipeline": pipeline, "run_id": exc.run_id, "created": False}
        except PodiumError as exc:
            raise OperationError(str(exc), 409 if isinstance(exc, PipelineBusy) else 422) from None
        logger.bind(pipeline=pipeline).info("run {} started ({})", run.id[:8], trigger)
        return {"pipeline": pipeline, "run_id": run.id, "created": True}

    async def _same_params(
        self, run_id: str, defaults: dict[str, Any], asked: dict[str, Any], key: str | None
    ) -> None:
        """Refuse a reused idempotency key sent with other parameters (as Stripe does):
        answering with the old run would say the new request ran when it did not."""
        run, _events, _checks = await Journal(self.database).run(run_id)
        wanted = _as_json({**defaults, **asked})
        used = _as_json(run.params)
        differ = sorted(k for k in wanted.keys() | used.keys() if wanted.get(k) != used.get(k))
        if differ:
            raise OperationError(
                f"idempotency key {key!r} was used for run {run_id} with other parameters "
                f"({', '.join(differ)}): use a new key for a different request",
                400,
            )

    async def backfill(
        self, pipeline: str, start: datetime, end: datetime, *, concurrency: int = 1
    ) -> dict[str, Any]:
        """One run per slot of the pipeline's schedule in [start, end) that has none.

        Only past slots: a slot run before its time fetches data before it exists, and
        its real fire would then find it done. ``end`` past now is clipped to now (the
        answer's ``to`` says so); a range that starts after now is refused."""
        self._pipeline(pipeline)
        plan = self.plan()
        if pipeline in plan.config.monitors:
            raise OperationError(
                f"{pipeline!r} is a monitor: probes run now would count towards its uptime "
                "and alert state as if they were past checks, so it cannot be backfilled",
                400,
            )
        schedule = plan.schedules.get(pipeline)
        if schedule is None:
            raise OperationError(
                f"pipeline {pipeline!r} has no schedule: a backfill runs its slots", 400
            )
        if start.tzinfo is None or end.tzinfo is None:
            raise OperationError("from and to need a time zone (e.g. 2026-12-01T00:00Z)", 400)
        if start >= end:
            raise OperationError("'from' must be before 'to'", 400)
        if not 1 <= concurrency <= 64:
            raise OperationError("concurrency is 1 to 64", 400)
        now = datetime.now(UTC)
        if start > now:
            raise OperationError(
                f"'from' ({start.isoformat()}) is in the future: a backfill runs past slots "
                "only; the schedule runs the others when they come",
                400,
            )
        if start < EARLIEST_BACKFILL:
            raise OperationError(
                f"'from' ({start.isoformat()}) is before {EARLIEST_BACKFILL:%Y-%m-%d}, "
                "the earliest slot a backfill runs",
                400,
            )
        end = min(end, now)
        try:
            slots = slots_between(schedule, start, end, MAX_BACKFILL_SLOTS)
        except ValueError:
            raise OperationError(
                f"the range holds more than {MAX_BACKFILL_SLOTS} slots: backfill it in parts",
                400,
            ) from None
        except OverflowError:
            raise OperationError(
                f"'from' ({start.isoformat()}) is too far back to step the schedule from: "
                "give a time within the pipeline's life",
                400,
            ) from None
        done = await Journal(self.database).fired(pipeline, slots)
        todo = [s for s in slots if s not in done]
        self.pool.backfill(pipeline, todo, concurrency)
        logger.bind(pipeline=pipeline).info(
            "backfill of {} slot(s) from {} to {} ({} already run)",
            len(todo), start.isoformat(), end.isoformat(), len(done),
        )  # fmt: skip
        return {
            "pipeline": pipeline,
            "slots": len(slots),
            "already_run": len(done),
            "queued": len(todo),
            "to": end.isoformat(),
            "scheduled_for": [s.isoformat() for s in todo],
        }

    async def pause(self, pipeline: str, *, reason: str | None, by: str | None) -> dict[str, Any]:
        self._pipeline(pipeline)
        changed = await Controls(self.database).pause(pipeline, reason=reason, by=by)
        return {"pipeline": pipeline, "paused": True, "changed": changed}

    async def resume(self, pipeline: str, *, by: str | None = None) -> dict[str, Any]:
        self._pipeline(pipeline)
        schedule = self.plan().schedules.get(pipeline)
        changed = await Controls(self.database).resume(pipeline, by=by)
        answer = {"pipeline": pipeline, "paused": False, "changed": changed}
        if schedule is not None and schedule.paused:
            answer["paused"] = True
            answer["note"] = "its schedule says paused = true in the config: edit it to resume"
        return answer

    async def cancel(self, run_id: str) -> dict[str, Any]:
        try:
            run = await Journal(self.database).request_cancel(run_id)
        except PodiumError as exc:
            raise OperationError(str(exc), 404) from None
        if run.status != "running":
            raise OperationError(f"run {run.id} is not running (it ended {run.status})", 409)
        return {"run_id": run.id, "pipeline": run.pipeline, "cancel_requested": True}

    async def mute(
        self, target: str, *, duration: str, reason: str | None, by: str | None
    ) -> dict[str, Any]:
        config = self.plan().config
        if target not in config.alerts and target not in config.pipelines:
            raise OperationError(f"{target!r} is neither an alert nor a pipeline", 404)
        try:
            span = parse_duration(duration)
        except ValueError as exc:
            raise OperationError(f"for: {exc}", 400) from None
        if span.total_seconds() <= 0:
            raise OperationError("for: a positive duration, e.g. 2h", 400)
        until = datetime.now(UTC) + span
        await Monitoring(self.database).mute(target, until, reason, by)
        return {"target": target, "until": until.isoformat()}

    async def unmute(self, target: str) -> dict[str, Any]:
        ended = await Monitoring(self.database).unmute(target)
        return {"target": target, "ended": ended}

    async def progress(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """The run's counters every half second until it ends, then its final row."""
        journal = Journal(self.database)
        while True:
            stats = self.pool.live.get(run_id)
            if stats is not None:
                yield {"run_id": run_id, "status": "running", **_counts(stats.counts())}
            else:
                try:
                    run = (await journal.run(run_id))[0]
                except PodiumError as exc:
                    raise OperationError(str(exc), 404) from None
                row = {"run_id": run.id, "status": run.status, **_counts(run.model_dump())}
                if run.status != "running":
                    yield {**row, "error": run.error, "done": True}
                    return
                yield row  # running on another node: its last heartbeat's counters
            await anyio.sleep(PROGRESS_EVERY)


def _counts(values: dict[str, Any]) -> dict[str, Any]:
    keys = ("requests", "retries", "failed_requests", "skipped_requests", "records_in", "stored")
    return {k: values.get(k, 0) for k in keys}


def _as_json(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the journal keeps them (JSON), so a date compares with its text."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(params, default=str))
    return out


def parse_time(text: str, what: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{what} expects a time such as 2026-12-01T00:00Z, got {text!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
