"""The daemon's runs: one task group owns them all, and the overlap policy decides each fire.

Runs live here and not in the scheduler's task group, so stopping the scheduler stops
firing without cancelling them (APScheduler cancels its running jobs on stop). A run's
budget is ``anyio.fail_after`` inside ``run_pipeline`` (status ``timed_out``); a
cancelled run records ``interrupted`` before it lets go.
"""

from __future__ import annotations

import functools
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import anyio
from anyio.abc import TaskGroup, TaskStatus
from loguru import logger

from podium.orchestrator import (
    CheckResultRow,
    Database,
    RunResult,
    RunRow,
    RunStats,
    run_pipeline,
)
from podium.pipeline import DuplicateFire, Pipeline, PipelineBusy, PodiumError, Schedule

from ._adapter import Fire
from ._metrics import Metrics
from ._models import Plan

# A queued fire whose pipeline runs on another node looks at the lock this often.
QUEUE_POLL_SECONDS = 1.0
# Network and OS failures: expected in a scheduled run, never a reason for a traceback.
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


@dataclass(slots=True)
class _Slot:
    running: int = 0
    queued: Fire | None = None


class RunPool:
    """Starts runs for fires under each pipeline's overlap policy; owns their tasks."""

    def __init__(self, database: Database, node_id: str, metrics: Metrics, plan: Plan) -> None:
        self.database = database
        self.node_id = node_id
        self.metrics = metrics
        self._slots: dict[str, _Slot] = {}
        self._tg: TaskGroup | None = None
        self._idle = anyio.Event()
        self._idle.set()
        self._pipelines: dict[str, Pipeline] = {}
        # The counters of every run going on here, by run id (progress for trigger --wait).
        self.live: dict[str, RunStats] = {}
        # Backfill slots not run yet, by pipeline.
        self.backfilling: dict[str, int] = {}
        self.plan = plan
        self.install(plan)

    def install(self, plan: Plan) -> None:
        """Use ``plan`` for every fire from now on; running runs keep what they started with."""
        self._pipelines = {
            name: plan.config.pipeline(name).model_copy(update={"timeout": plan.budget(name)})
            for name in plan.schedules
        }
        self.plan = plan
        for name in list(self._slots):
            if name not in plan.schedules and not self._slots[name].running:
                del self._slots[name]

    def running(self) -> dict[str, int]:
        return {name: slot.running for name, slot in self._slots.items()}

    def queued(self, pipeline: str) -> Fire | None:
        slot = self._slots.get(pipeline)
        return slot.queued if slot else None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[RunPool]:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                yield self
            finally:
                self._tg = None

    def cancel(self) -> None:
        """Cancel every run now; each records ``interrupted`` on its way out."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def submit(self, fire: Fire) -> None:
        """Start, queue or skip a run for ``fire``, by the pipeline's overlap policy."""
        schedule = self.plan.schedules.get(fire.pipeline)
        if self._tg is None or schedule is None:
            return
        slot = self._slots.setdefault(fire.pipeline, _Slot())
        # A run taken over already holds the pipeline's lock on every node: it goes now.
        if slot.running and schedule.overlap != "parallel" and fire.resume is None:
            if schedule.overlap == "queue" and slot.queued is None:
                slot.queued = fire
                logger.info("fire {} queued: the previous run is still going", _at(fire))
            else:
                self.metrics.skip(fire.pipeline, "overlap")
                logger.info("fire {} skipped: the previous run is still going", _at(fire))
            return
        self._start(fire, slot)

    def _start(self, fire: Fire, slot: _Slot) -> None:
        assert self._tg is not None
        slot.running += 1
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        self._tg.start_soon(self._run, fire, slot, name=f"run:{fire.pipeline}@{_at(fire)}")

    async def _run(self, fire: Fire, slot: _Slot) -> None:
        try:
            with logger.contextualize(pipeline=fire.pipeline):
                await self._execute(fire)
        finally:
            slot.running -= 1
            queued, slot.queued = slot.queued, None
            if queued is not None and self._tg is not None and fire.pipeline in self._pipelines:
                self._start(queued, slot)
            elif not any(s.running for s in self._slots.values()):
                self._idle.set()

    async def start_now(self, fire: Fire) -> RunRow:
        """Start a run for ``fire`` now, whatever the schedule (a trigger, a backfill
        slot): the run's row once it is recorded as running. What stops it from starting
        — ``DuplicateTrigger``, ``DuplicateFire``, ``PipelineBusy``, a broken pipeline —
        is raised here, to the one who asked."""
        if self._tg is None:
            raise PodiumError("the daemon is stopping: no new runs")
        started: RunRow = await self._tg.start(
            self._run_started, fire, name=f"run:{fire.pipeline}:{fire.trigger}"
        )
        return started

    def backfill(self, pipeline: str, slots: list[datetime], concurrency: int) -> None:
        """Run ``pipeline`` once per slot (its ``scheduled_for``), ``concurrency`` at a
        time, in the background. Backfill runs do not take the overlap lock: running them
        side by side is what was asked for."""
        if self._tg is None:
            raise PodiumError("the daemon is stopping: no new runs")
        if slots:
            self.backfilling[pipeline] = self.backfilling.get(pipeline, 0) + len(slots)
            self._tg.start_soon(
                self._backfill, pipeline, slots, concurrency, name=f"backfill:{pipeline}"
            )

    async def _backfill(self, pipeline: str, slots: list[datetime], concurrency: int) -> None:
        limiter = anyio.CapacityLimiter(concurrency)

        async def one(slot: datetime) -> None:
            try:
                async with limiter:
                    fire = Fire(pipeline, slot, slot, "backfill", exclusive=False)
                    await self._run_one(fire)
            finally:
                self.backfilling[pipeline] -= 1
                if not self.backfilling[pipeline]:
                    del self.backfilling[pipeline]

        async with anyio.create_task_group() as tg:
            for slot in slots:
                tg.start_soon(one, slot, name=f"backfill:{pipeline}@{slot.isoformat()}")

    async def _run_one(self, fire: Fire) -> None:
        slot = self._slots.setdefault(fire.pipeline, _Slot())
        slot.running += 1
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        try:
            with logger.contextualize(pipeline=fire.pipeline):
                await self._execute(fire)
        finally:
            slot.running -= 1
            if not any(s.running for s in self._slots.values()):
                self._idle.set()

    async def _run_started(self, fire: Fire, *, task_status: TaskStatus[RunRow]) -> None:
        slot = self._slots.setdefault(fire.pipeline, _Slot())
        slot.running += 1
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        try:
            with logger.contextualize(pipeline=fire.pipeline):
                await self._execute(fire, task_status)
        finally:
            slot.running -= 1
            if not any(s.running for s in self._slots.values()):
                self._idle.set()

    def _pipeline_for(self, fire: Fire) -> tuple[Pipeline, Schedule | None] | None:
        """The pipeline a fire runs: a scheduled one with its budget, or — asked for by
        hand — any valid pipeline of the config."""
        schedule = self.plan.schedules.get(fire.pipeline)
        pipeline = self._pipelines.get(fire.pipeline)
        if pipeline is not None:
            return pipeline, schedule
        if fire.trigger in ("schedule", "catch_up"):
            return None
        found = self.plan.config.pipeline(fire.pipeline)
        budget = found.timeout or self.plan.settings.default_timeout.total_seconds()
        return found.model_copy(update={"timeout": budget}), None

    async def _execute(self, fire: Fire, task_status: TaskStatus[RunRow] | None = None) -> None:
        found = self._pipeline_for(fire)
        if found is None:
            return
        pipeline, schedule = found
        run_id = fire.resume.id if fire.resume is not None else uuid.uuid4().hex
        told = False

        def on_started(run: RunRow) -> None:
            nonlocal told
            told = True
            if task_status is not None:
                task_status.started(run)

        overlap = schedule.overlap if schedule is not None else "skip"
        exclusive = fire.exclusive if fire.exclusive is not None else overlap != "parallel"
        stats = RunStats()
        late = (datetime.now(UTC) - fire.due).total_seconds()
        self.metrics.lateness.observe(max(late, 0.0))
        started = time.perf_counter()
        status: str | None = "failed"
        checks: list[CheckResultRow] = []
        try:
            connectors = self.plan.config.connectors_for(pipeline)
            start = functools.partial(
                run_pipeline,
                pipeline,
                connectors=connectors,
                database=self.database,
                concurrency=self.plan.config.limits.concurrency,
                params=fire.params,
                trigger=fire.trigger,
                scheduled_for=fire.scheduled_for,
                stats=stats,
                run_id=run_id,
                secrets=self.plan.config.secrets,
                node=self.node_id,
                # One run at a time across every node, unless overlap = parallel.
                exclusive=exclusive,
                idempotency_key=fire.idempotency_key,
                resume=fire.resume,
                lease=self.plan.config.journal.lease,
                alerts=self.plan.config.rules.get(fire.pipeline, ()),
                on_started=on_started,
            )
            self.live[run_id] = stats
            if task_status is not None or schedule is None:
                result = await start()  # asked for now: a busy pipeline is an answer
            else:
                result = await self._run_when_free(schedule, start)
            status, checks = result.status, result.checks
        except PodiumError as exc:
            status = None
            if task_status is not None and not told:
                raise  # the run did not start: the one who asked hears why
            if isinstance(exc, DuplicateFire):
                self.metrics.skip(fire.pipeline, "duplicate")
                logger.info("fire {} already ran (another node or delivery): nothing to do",
                            _at(fire))  # fmt: skip
            elif isinstance(exc, PipelineBusy):
                self.metrics.skip(fire.pipeline, "overlap")
                logger.info("fire {} skipped: {}", _at(fire), exc.message)
            else:
                status = "failed"
                logger.error("fire {} could not start a run: {}", _at(fire), exc)
        except anyio.get_cancelled_exc_class():
            status = "interrupted"
            raise
        except _TRANSPORT_ERRORS as exc:
            # Expected trouble that escaped as a raw library error. Its str/repr may carry
            # request headers or URLs with credentials: the type name is all that is logged.
            logger.error("fire {} failed: {}", _at(fire), type(exc).__name__)
        except Exception as exc:  # a bug in a run must not take the daemon down
            logger.error(
                "fire {} failed with an internal error: {}\n{}",
                _at(fire),
                type(exc).__name__,
                _frames(exc),
            )
        finally:
            self.live.pop(run_id, None)
            if status is not None:
                seconds = time.perf_counter() - started
                self.metrics.run_finished(fire.pipeline, status, seconds, stats, checks)
                logger.bind(run_id=run_id).info(
                    "fire {} → run {} {} in {:.3f}s (late {:.1f} ms)",
                    _at(fire),
                    run_id,
                    status,
                    seconds,
                    late * 1000,
                )

    async def _run_when_free(
        self, schedule: Schedule, start: Callable[[], Awaitable[RunResult]]
    ) -> RunResult:
        """Start the run; with ``overlap = "queue"`` and a run of the pipeline going on
        another node, wait for it (polling its lock) instead of skipping."""
        while True:
            try:
                return await start()
            except PipelineBusy:
                if schedule.overlap != "queue":
                    raise
            await anyio.sleep(QUEUE_POLL_SECONDS)


def _frames(exc: BaseException) -> str:
    """Where a bug was raised: the stack's file/line/source only, never the exception's
    value or locals (an exception's text can quote a request, headers included)."""
    return "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__))).rstrip()


def _at(fire: Fire) -> str:
    when = fire.scheduled_for or fire.due
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
