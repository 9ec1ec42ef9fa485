"""The one module that knows APScheduler 4.0.0a6 (pinned exactly; an alpha, swappable).

The rest of ``jobs/`` sees ``SchedulerAdapter``: reconcile schedules, read next fire
times, receive ``Fire``s. How the measured pitfalls (docs/apscheduler4.md) are
met here:

1. Stuck running-jobs counter after ``kill -9``: the task has ``max_running_jobs=None``
   (overlap is podium's job, see ``_pool``), lease 10 s and cleanup 5 s by default, and
   each node a stable ``identity`` so a restarted node reaps its own abandoned jobs.
   A job only hands the fire to podium's run pool and returns, so a job is "running"
   for microseconds and a crash almost never leaves one behind. At-least-once delivery
   is made exactly-once by podium's run-table key (pipeline, scheduled_for).
2. SQLite stores lose schedules: only the memory store (one node) or PostgreSQL.
3. No job timeout: the run's budget is podium's ``anyio.fail_after`` (``timed_out``).
4. Stop cancels running jobs: runs live in podium's own task group, not APScheduler's,
   so stopping the scheduler stops firing but leaves running pipelines to the grace period.
5. ``configure_task(callable)`` resets options: one string task id, configured once with
   explicit options; schedules refer to it by id.
6. ``IntervalTrigger`` fires at once when added: interval schedules start one interval
   from now (or at the next step of their configured ``start``).
7. Tasks are stored as references: the task has no stored reference at all; each node
   registers its local callable, and a schedule's only argument is the pipeline name.
8. Never block the loop: SQLite work in runs is short batches; PostgreSQL is async.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from apscheduler import (
    AsyncScheduler,
    CoalescePolicy,
    ConflictPolicy,
    TaskDefaults,
    current_job,
)
from apscheduler.abc import Trigger
from apscheduler.datastores.memory import MemoryDataStore
from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
from apscheduler.eventbrokers.asyncpg import AsyncpgEventBroker
from apscheduler.eventbrokers.local import LocalEventBroker
from apscheduler.executors.async_ import AsyncJobExecutor
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from croniter import CroniterBadDateError, croniter

from podium.orchestrator import RunRow
from podium.pipeline import Schedule

from ._models import SchedulerSettings

TASK_ID = "podium.fire"
PREFIX = "podium:"


@dataclass(frozen=True, slots=True)
class Fire:
    """One fire: ``scheduled_for`` is the nominal time (the exactly-once key)."""

    pipeline: str
    scheduled_for: datetime | None
    due: datetime  # nominal time plus jitter: when it was meant to start
    trigger: str = "schedule"
    # An interrupted run this node took over: the fire continues it instead of starting one.
    resume: RunRow | None = None
    # A fire asked for (podium trigger, backfill): its parameters, the trigger's key, and
    # whether it holds the pipeline's overlap lock (None: as the schedule's overlap says).
    params: dict[str, Any] | None = None
    idempotency_key: str | None = None
    exclusive: bool | None = None


@dataclass(frozen=True, slots=True)
class ScheduleState:
    pipeline: str
    next_fire: datetime | None
    paused: bool


FireHandler = Callable[[Fire], Awaitable[None]]


def fingerprint(schedule: Schedule) -> str:
    """What decides the trigger; catch-up, overlap and timeout are read at fire time."""
    keys = {"cron", "interval", "timezone", "jitter", "start", "end", "paused"}
    return hashlib.sha1(schedule.model_dump_json(include=keys).encode()).hexdigest()[:16]


def make_trigger(schedule: Schedule, now: datetime) -> Trigger:
    """The APScheduler trigger; raises ValueError for a cron expression it rejects."""
    start, end = schedule.start_at(), schedule.end_at()
    if schedule.interval is not None:
        step = schedule.interval
        if start is None:
            first = now + step
        elif start > now:
            first = start
        else:
            first = start + step * math.ceil((now - start) / step)
        if end is None:
            return IntervalTrigger(seconds=step.total_seconds(), start_time=first)
        return IntervalTrigger(seconds=step.total_seconds(), start_time=first, end_time=end)
    assert schedule.cron is not None
    # CronTrigger reads a start time's wall clock as if it were in the trigger's zone
    # (measured: 08:01 UTC start, "0 9 * * *" Berlin → 09:00 Berlin the same day, in the
    # past): hand it times already in that zone.
    # With a seconds field it also keeps the start time's microseconds in every fire time:
    # start on a whole second.
    zone = schedule.zone
    begin = (max(start, now) if start else now).astimezone(zone)
    if begin.microsecond:
        begin = begin.replace(microsecond=0) + timedelta(seconds=1)
    bounds: dict[str, Any] = {"start_time": begin, "timezone": zone}
    if end is not None:
        bounds["end_time"] = end.astimezone(zone)
    fields = schedule.cron.split()
    if len(fields) == 5:
        return CronTrigger.from_crontab(schedule.cron, **bounds)
    second, minute, hour, day, month, dow = fields
    return CronTrigger(
        second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=dow, **bounds
    )


def missed_fire(schedule: Schedule, since: datetime, now: datetime) -> datetime | None:
    """The latest fire time in (since, now], if the schedule had one: a missed fire."""
    start, end = schedule.start_at(), schedule.end_at()
    limit = min(now, end) if end else now
    if schedule.interval is not None:
        anchor = start if start and start > since else since
        steps = math.floor((limit - anchor) / schedule.interval)
        if anchor == since and steps < 1:
            return None
        if steps < 0:
            return None
        return anchor + schedule.interval * steps
    assert schedule.cron is not None
    latest = previous_cron_fire(schedule.cron, limit, schedule.zone)
    if latest is None or latest <= since or (start is not None and latest < start):
        return None
    return latest


def previous_cron_fire(cron: str, at_or_before: datetime, zone: ZoneInfo) -> datetime | None:
    """The latest time ``cron`` fires at or before ``at_or_before`` (croniter's ``get_prev``,
    from one second later so that a fire exactly at the limit counts)."""
    base = (at_or_before + timedelta(seconds=1)).astimezone(zone)
    try:
        itr = croniter(cron, base, second_at_beginning=len(cron.split()) == 6)
        previous: datetime = itr.get_prev(datetime)
    except CroniterBadDateError:  # e.g. "0 0 30 2 *": never fires
        return None
    return previous.astimezone(UTC)


class SchedulerAdapter:
    """APScheduler behind podium's interface; an async context manager owning it all."""

    def __init__(self, settings: SchedulerSettings, node_id: str, on_fire: FireHandler) -> None:
        self.settings = settings
        self.node_id = node_id
        self._on_fire = on_fire
        self._stack = AsyncExitStack()
        self._scheduler: AsyncScheduler | None = None

    @property
    def shared(self) -> bool:
        return self.settings.url is not None

    async def __aenter__(self) -> SchedulerAdapter:
        # Nodes starting together on a fresh database race to create APScheduler's tables
        # and enum types (a unique violation on pg_type); the loser simply tries again.
        for attempt in range(1, 6):
            try:
                return await self._open()
            except Exception as exc:
                if attempt == 5 or not _creation_race(exc):
                    raise
                await anyio.sleep(0.2 * attempt + random.random() * 0.3)
        raise AssertionError("unreachable")

    async def _open(self) -> SchedulerAdapter:
        async with AsyncExitStack() as stack:
            if self.settings.url is None:
                store: Any = MemoryDataStore()
                broker: Any = LocalEventBroker()
            else:
                from sqlalchemy.engine import make_url
                from sqlalchemy.ext.asyncio import create_async_engine

                url = make_url(self.settings.url).set(drivername="postgresql+asyncpg")
                engine = create_async_engine(url)
                stack.push_async_callback(engine.dispose)
                store = SQLAlchemyDataStore(engine)
                broker = AsyncpgEventBroker.from_async_sqla_engine(engine)
            scheduler = AsyncScheduler(
                store,
                broker,
                identity=self.node_id,
                lease_duration=self.settings.lease,
                cleanup_interval=self.settings.cleanup,
                job_executors={"async": AsyncJobExecutor()},
                task_defaults=TaskDefaults(job_executor="async", max_running_jobs=None),
                logger=logging.getLogger("podium.apscheduler"),
            )
            await stack.enter_async_context(scheduler)
            await scheduler.configure_task(
                TASK_ID,
                func=self._job,
                job_executor="async",
                max_running_jobs=None,
                misfire_grace_time=None,
            )
            self._scheduler = scheduler
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Stops firing: APScheduler cancels its own tasks only; podium's runs live elsewhere.
        self._scheduler = None
        await self._stack.__aexit__(exc_type, exc, tb)

    @property
    def scheduler(self) -> AsyncScheduler:
        if self._scheduler is None:
            raise RuntimeError("the scheduler adapter is not open (use it as `async with`)")
        return self._scheduler

    async def start(self) -> None:
        await self.scheduler.start_in_background()

    async def reconcile(self, schedules: dict[str, Schedule]) -> set[str]:
        """Make the store's podium schedules match ``schedules``; the newly added names."""
        scheduler = self.scheduler
        existing = {
            s.id.removeprefix(PREFIX): s
            for s in await scheduler.get_schedules()
            if s.id.startswith(PREFIX)
        }
        now = datetime.now(UTC)
        added: set[str] = set()
        for name in existing.keys() - schedules.keys():
            await scheduler.remove_schedule(PREFIX + name)
        for name, schedule in schedules.items():
            mark = fingerprint(schedule)
            current = existing.get(name)
            if current is not None and current.metadata.get("podium") == mark:
                continue
            await scheduler.add_schedule(
                TASK_ID,
                make_trigger(schedule, now),
                id=PREFIX + name,
                kwargs={"pipeline": name},
                paused=schedule.paused,
                coalesce=CoalescePolicy.latest,
                max_jitter=schedule.jitter or None,
                metadata={"podium": mark},
                conflict_policy=(
                    ConflictPolicy.do_nothing if current is None else ConflictPolicy.replace
                ),
            )
            if current is None:
                added.add(name)
        return added

    async def states(self) -> dict[str, ScheduleState]:
        out: dict[str, ScheduleState] = {}
        for s in await self.scheduler.get_schedules():
            if s.id.startswith(PREFIX):
                name = s.id.removeprefix(PREFIX)
                out[name] = ScheduleState(name, s.next_fire_time, s.paused)
        return out

    async def _job(self, pipeline: str) -> None:
        job = current_job.get()
        due = job.scheduled_fire_time
        assert due is not None
        await self._on_fire(Fire(pipeline, due - job.jitter, due))


def _creation_race(exc: BaseException) -> bool:
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    if isinstance(exc, IntegrityError | ProgrammingError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_creation_race(e) for e in exc.exceptions)
    return _creation_race(exc.__cause__) if exc.__cause__ is not None else False


def lateness(fire: Fire, now: datetime | None = None) -> timedelta:
    return (now or datetime.now(UTC)) - fire.due
