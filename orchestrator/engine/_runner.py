"""Running one pipeline: its row, its stages, its heartbeat, its end.

The run's row is written first (status ``running``, with a lease) and completed last,
inside a shield, so a run that fails, times out or is cancelled still leaves an
accurate record — and every batch stored before the end stays stored. While it runs, a
heartbeat renews the lease and writes the counters: a run whose process dies is found
(its lease expires) and shows what it had done. A resumed run continues the same row:
one more attempt, counted on top of what the earlier ones did.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
from loguru import logger

from podium.connectors import Connector
from podium.pipeline import Check, Pipeline, PodiumError, ResumeRefused

from .._redact import Redactor
from ..alerts import AlertRule, Outcome
from ..http import Budgets, Gateway, Transports
from ..storage import (
    COUNTS,
    LEASE,
    CheckResultRow,
    Database,
    DeadLetterRow,
    Journal,
    RunEventRow,
    RunRow,
    utcnow,
)
from ._checks import CheckTally
from ._context import LOGGED_PER_KIND, RunContext
from ._durability import DurabilityPlan, pipeline_hash
from ._incremental import advanced_marks, load_cursors
from ._outcomes import alert_outcomes, has_verdict, settle_unevaluated
from ._saga import compensate, has_compensations
from ._stats import RunStats, StageStats
from ._verdict import failure_reason, status_of
from ._wiring import run_stages

# Seconds the final journal write may take, even during cancellation.
JOURNAL_DEADLINE = 15.0
# How often a running run renews its lease and writes its counters to its row, at most:
# a fifth of the lease when that is shorter, so four heartbeats may be late before it lapses.
HEARTBEAT_SECONDS = 3.0
# Seconds compensations may take once a run has failed.
COMPENSATION_DEADLINE = 120.0


class LeaseLost(PodiumError):
    """The run's row is no longer this process's: its lease expired (the process stalled
    or lost the database) and another process marked it or took it over."""


class CancelRequested(PodiumError):
    """Someone asked for the run to stop (``podium cancel``, the page, the API)."""


@dataclass
class RunResult:
    run: RunRow
    stats: RunStats
    checks: list[CheckResultRow] = field(default_factory=list)
    events: list[RunEventRow] = field(default_factory=list)
    # Why the run's final record could not be written (None: it was): the run's rows are
    # stored, but the journal does not know how the run ended.
    record_error: str | None = None
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    # Outbox ids of the alert notifications the run's outcomes queued.
    notifications: list[int] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def ok(self) -> bool:
        """The run did its work (ok or partial) and its record was written."""
        return self.run.status in ("ok", "partial") and self.record_error is None


def new_run_id() -> str:
    return uuid.uuid4().hex


def this_process() -> str:
    """How a run outside a daemon names its owner: ``<host>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


async def run_pipeline(
    pipeline: Pipeline,
    *,
    connectors: dict[str, Connector],
    database: Database,
    concurrency: int = 64,
    params: dict[str, Any] | None = None,
    trigger: str = "cli",
    scheduled_for: datetime | None = None,
    dry_run: bool = False,
    stats: RunStats | None = None,
    run_id: str | None = None,
    secrets: Iterable[str] = (),
    transport: Transports | None = None,
    node: str | None = None,
    exclusive: bool = False,
    idempotency_key: str | None = None,
    resume: RunRow | None = None,
    replay: dict[str, list[DeadLetterRow]] | None = None,
    replay_of: str | None = None,
    lease: timedelta = LEASE,
    alerts: Sequence[AlertRule] = (),
    on_started: Callable[[RunRow], None] | None = None,
    budgets: Budgets | None = None,
) -> RunResult:
    """Run ``pipeline`` once and record it; raises only for errors before the run starts.

    ``secrets`` are values masked wherever the run logs or records text (the config's
    environment-provided values); connectors' own credentials are added to them.
    ``transport`` replaces the HTTP transport, for every connector or by connector name
    (``podium.testing.MockTransport`` runs a pipeline with no socket).

    Before it starts, a run can be refused: ``DuplicateFire`` when ``scheduled_for`` is
    set and that fire already ran; ``PipelineBusy`` when ``exclusive`` and another run of
    the pipeline is running, on any node; ``DuplicateTrigger`` when ``idempotency_key``
    already started a run. ``resume`` continues a claimed interrupted run (see
    ``Journal.claim``) from its checkpoints; ``replay`` sends only the given dead-lettered
    items of each fetch stage.

    ``alerts`` are the pipeline's alert rules (``Config.rules``): the run's outcome for
    each is applied to its incident state in the run's final transaction, and the
    notifications that queues are in ``RunResult.notifications`` for a dispatcher.
    ``on_started`` is called with the run's row once it is recorded as running.
    ``budgets``: where the connectors' rate budgets are kept (default: the process's, so
    runs at the same time on one connector share its budget).
    """
    missing = sorted(pipeline.connectors() - connectors.keys())
    if missing:
        raise PodiumError(f"pipeline {pipeline.name!r} needs connectors: {', '.join(missing)}")
    merged_params = {**pipeline.params, **(params or {})}
    stats = stats or RunStats()
    for stage in pipeline.stages:
        stats.stages[stage.name] = StageStats(
            kind=stage.kind, planned=getattr(stage, "fan_out_size", lambda: None)()
        )
    journal = Journal(database, lease=lease)
    redactor = Redactor(secrets)
    for connector in connectors.values():
        redactor.add(connector.secrets())
    digest = pipeline_hash(pipeline, merged_params)
    if resume is None:
        run = RunRow(
            id=run_id or new_run_id(),
            pipeline=pipeline.name,
            trigger=trigger,
            node=node or this_process(),
            pid=os.getpid(),
            scheduled_for=scheduled_for,
            params=redactor.tree(merged_params),
            dry_run=dry_run,
            pipeline_hash=digest,
            lock_key=pipeline.name if exclusive else None,
            idempotency_key=idempotency_key,
            replay_of=replay_of,
        )
    else:
        run = resume
        if run.pipeline_hash != digest:
            raise ResumeRefused(
                f"run {run.id} of {pipeline.name!r} was started with another definition of "
                "the pipeline (its stages or parameters changed since): start a new run"
            )
    cursors = await load_cursors(journal, pipeline)
    if resume is None:
        await journal.start(run)
    if on_started is not None:
        on_started(run)
    gateway = Gateway(
        {name: connectors[name] for name in sorted(pipeline.connectors())},
        concurrency=concurrency,
        stats=stats.connectors,
        redactor=redactor,
        transports=transport,
        budgets=budgets,
    )
    ctx = RunContext(run, pipeline, stats, gateway, database, merged_params, dry_run)
    ctx.cursors = cursors
    ctx.journal = journal
    ctx.durability = DurabilityPlan.of(pipeline)
    ctx.progress_kept = not dry_run
    ctx.replay = replay
    ctx.rules = tuple(alerts)
    if resume is not None:
        ctx.base = {name: getattr(run, name) for name in COUNTS} | {"stages": run.stages}
        ctx.progress = await journal.progress(run.id)
    for stage in pipeline.stages:
        if isinstance(stage, Check):
            ctx.checks[stage.name] = CheckTally(stage, redactor.tree)
    with logger.contextualize(run_id=run.id, pipeline=pipeline.name):
        how = f"attempt {run.attempt}, resumed" if resume is not None else trigger
        logger.info("run started ({})", how)
        return await _execute(ctx, journal)


async def _execute(ctx: RunContext, journal: Journal) -> RunResult:
    run, pipeline = ctx.run, ctx.pipeline
    unexpected: BaseException | None = None
    async with ctx.gateway:
        try:
            with anyio.fail_after(pipeline.timeout):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_heartbeat, ctx, journal, name=f"run:{run.id[:8]}:heartbeat")
                    await run_stages(ctx)
                    tg.cancel_scope.cancel()
        except TimeoutError:
            run.status, run.error = "timed_out", f"run exceeded its timeout of {pipeline.timeout}s"
        except anyio.get_cancelled_exc_class():
            run.status, run.error = "interrupted", "run was interrupted before it finished"
            with anyio.CancelScope(shield=True):
                await _finish(ctx, journal)
            raise
        except Exception as exc:
            podium_error = _first_podium_error(exc)
            if podium_error is None:
                # A bug, not a user mistake: record it, then let the traceback through.
                unexpected = exc
                run.status, run.error = "failed", ctx.gateway.redact(f"internal error: {exc!r}")
            elif isinstance(podium_error, CancelRequested):
                run.status, run.error = "cancelled", str(podium_error)
            else:
                run.status, run.error = "failed", ctx.gateway.redact(str(podium_error))
        result = await _finish(ctx, journal)
    if run.status == "failed":
        logger.error("run failed: {}", run.error)
    if unexpected is not None:
        raise unexpected
    return result


async def _finish(ctx: RunContext, journal: Journal) -> RunResult:
    """Count, conclude, undo if it failed, record; the record is written even while the
    run is being cancelled."""
    checks = list(ctx.checks.values())
    _tally(ctx, checks)
    run = ctx.run
    if run.status == "running":
        run.status = status_of(ctx, checks)
        if run.status == "failed" and run.error is None:
            run.error = failure_reason(ctx, checks)
    if run.status in ("failed", "timed_out", "cancelled") and ctx.failure_policy != "fail":
        await _compensate(ctx)
    if run.status == "interrupted":
        await _keep_progress(ctx)
    run.finished_at = utcnow()
    if ctx.dropped_events:
        ctx.events.append(
            RunEventRow(
                run_id=run.id,
                kind="events_dropped",
                message=f"{ctx.dropped_events} more events were not recorded",
            )
        )
    rows = [t.row(run.id) for t in checks]
    history: list[CheckResultRow] = []
    if has_verdict(run):
        settle_unevaluated(run, checks, rows)
        history = [row for t, row in zip(checks, rows, strict=True) if t.evaluated or not row.ok]
    outcomes = alert_outcomes(ctx.rules, run, rows)
    # Marks advance only after a clean run: every stage finished and nothing anywhere was
    # lost — no failed request, no rejected record, no failed check (an inner merge or a
    # dropping check downstream could otherwise skip a record that never reached a store).
    clean = run.status == "ok" and not ctx.dry_run
    marks = advanced_marks(ctx.cursors) if ctx.cursors and clean else None
    record_error, queued = await _record(ctx, journal, rows, marks, outcomes, history)
    duration = (run.finished_at - run.started_at).total_seconds()
    logger.info(
        "run {} in {:.2f}s: {} requests, {} stored", run.status, duration, run.requests, run.stored
    )
    return RunResult(run, ctx.stats, rows, ctx.events, record_error, ctx.dead_letters, queued)


def _tally(ctx: RunContext, checks: list[CheckTally]) -> None:
    """Copy the live counters into the run's row; run checks see the final counts."""
    run, stats = ctx.run, ctx.stats
    for tally in checks:
        if tally.check.on == "run" and run.status == "running":
            tally.observe(stats.counts())
    ctx.copy_counts()
    run.checks_failed = stats.checks_failed = sum(1 for t in checks if t.failed)
    run.causes = ctx.causes.as_json()
    for kind, n in ctx.logged.items():
        if n > LOGGED_PER_KIND:
            logger.warning("{} more {} events (see: podium show {})", n - LOGGED_PER_KIND,
                           kind.replace("_", " "), run.id[:8])  # fmt: skip


async def _compensate(ctx: RunContext) -> None:
    """A failed run undoes the side effects it recorded, most recent first."""
    if ctx.dry_run or not has_compensations(ctx):
        return
    with anyio.move_on_after(COMPENSATION_DEADLINE, shield=True):
        try:
            undone, failed = await compensate(ctx)
        except PodiumError as exc:
            undone, failed = 0, -1
            logger.error("compensating the run's side effects failed: {}", exc)
    if undone or failed:
        what = f"{undone} side effect(s) undone"
        if failed:
            what += f", {failed if failed > 0 else 'some'} could not be (see: podium dead-letters)"
        ctx.run.error = f"{ctx.run.error}; {what}" if ctx.run.error else what


async def _keep_progress(ctx: RunContext) -> None:
    """An interrupted run may be resumed: what its run ends carried is committed now."""
    with anyio.move_on_after(JOURNAL_DEADLINE, shield=True):
        try:
            await ctx.flush_marks()
        except PodiumError as exc:
            logger.warning("could not record the run's progress: {}", exc)


async def _heartbeat(ctx: RunContext, journal: Journal) -> None:
    """Every few seconds until cancelled: renew the lease, write the counters, commit the
    marks of run ends that store nothing. A run that is killed shows what it had done; a
    run whose row was taken from it (it stalled past its lease) stops."""
    every = min(HEARTBEAT_SECONDS, journal.lease.total_seconds() / 5)
    while True:
        await anyio.sleep(every)
        ctx.copy_counts()
        try:
            state = await journal.heartbeat(ctx.run)
            await ctx.flush_marks()
        except PodiumError as exc:  # the store would meet the same trouble: say it, go on
            logger.warning("could not record the run's progress: {}", exc)
            continue
        if state == "cancel":
            raise CancelRequested("cancelled on request (podium cancel)")
        if state == "lost":
            raise LeaseLost(
                f"run {ctx.run.id} lost its lease: it stalled for longer than "
                f"{journal.lease.total_seconds():g}s and another process marked it interrupted"
            )


async def _record(
    ctx: RunContext,
    journal: Journal,
    rows: list[CheckResultRow],
    marks: dict[str, Any] | None,
    outcomes: list[tuple[AlertRule, Outcome]],
    history: list[CheckResultRow],
) -> tuple[str | None, list[int]]:
    """Write the run's final record within a deadline (an unreachable database must not
    hold a shutdown forever): why it could not be written (None: it was), and the
    notifications it queued."""
    run = ctx.run
    problem: str | None = None
    queued: list[int] | None = []
    with anyio.move_on_after(JOURNAL_DEADLINE, shield=True) as scope:
        try:
            queued = await journal.finish(
                run,
                ctx.events,
                rows,
                marks,
                ctx.dead_letters,
                outcomes=outcomes,
                history=history,
            )
            if queued is None:
                problem = "another process had taken the run over (its lease had expired)"
        except PodiumError as exc:
            problem = str(exc)
    if scope.cancelled_caught:
        problem = f"writing it took over {JOURNAL_DEADLINE:g}s and was abandoned"
    if problem is not None:
        problem = f"run {run.id} ended {run.status}, but its record was not written: {problem}"
        logger.error("{}", problem)
    return problem, queued or []


def _first_podium_error(exc: BaseException) -> PodiumError | None:
    """The PodiumError inside (possibly nested) task-group exception groups."""
    if isinstance(exc, PodiumError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_podium_error(inner)
            if found is not None:
                return found
    return None
