"""Running one pipeline: open its sessions, wire its stages, record the run.

The run's row is written first (status ``running``) and completed last, inside a shield,
so a run that fails, times out or is cancelled still leaves an accurate record — and
every batch stored before the end stays stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from loguru import logger

from podium.connectors import Connector
from podium.pipeline import Check, Pipeline, PodiumError, Transform

from .._redact import Redactor
from ..http import Gateway, Transports
from ..storage import CheckResultRow, Database, Journal, RunEventRow, RunRow, utcnow
from ._checks import CheckTally
from ._context import LOGGED_PER_KIND, RunContext
from ._incremental import advanced_marks, load_cursors
from ._stage_io import Item, Outbox
from ._stage_tasks import fusible, run_stage
from ._stats import RunStats, StageStats

# Batches buffered between two stages; with fetch batches of ~20-100 records this bounds
# what waits in memory at a few thousand records per edge.
EDGE_BUFFER = 32
# Seconds the final journal write may take, even during cancellation.
JOURNAL_DEADLINE = 15.0
# How often a running run writes its counters to its row.
HEARTBEAT_SECONDS = 3.0


@dataclass
class RunResult:
    run: RunRow
    stats: RunStats
    checks: list[CheckResultRow] = field(default_factory=list)
    events: list[RunEventRow] = field(default_factory=list)
    # Why the run's final record could not be written (None: it was): the run's rows are
    # stored, but the journal does not know how the run ended.
    record_error: str | None = None

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def ok(self) -> bool:
        """The run did its work (ok or partial) and its record was written."""
        return self.run.status in ("ok", "partial") and self.record_error is None


def new_run_id() -> str:
    return uuid.uuid4().hex


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
) -> RunResult:
    """Run ``pipeline`` once and record it; raises only for errors before the run starts.

    Raises ``DuplicateFire`` when ``scheduled_for`` is set and that fire already ran.
    ``secrets`` are values masked wherever the run logs or records text (the config's
    environment-provided values); connectors' own credentials are added to them.
    ``transport`` replaces the HTTP transport, for every connector or by connector name
    (``podium.testing.MockTransport`` runs a pipeline with no socket).
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
    journal = Journal(database)
    redactor = Redactor(secrets)
    for connector in connectors.values():
        redactor.add(connector.secrets())
    run = RunRow(
        id=run_id or new_run_id(),
        pipeline=pipeline.name,
        trigger=trigger,
        scheduled_for=scheduled_for,
        params=redactor.tree(merged_params),
        dry_run=dry_run,
    )
    cursors = await load_cursors(journal, pipeline)
    await journal.start(run)
    gateway = Gateway(
        {name: connectors[name] for name in sorted(pipeline.connectors())},
        concurrency=concurrency,
        stats=stats.connectors,
        redactor=redactor,
        transports=transport,
    )
    ctx = RunContext(run, pipeline, stats, gateway, database, merged_params, dry_run)
    ctx.cursors = cursors
    for stage in pipeline.stages:
        if isinstance(stage, Check):
            ctx.checks[stage.name] = CheckTally(stage, redactor.tree)
    with logger.contextualize(run_id=run.id, pipeline=pipeline.name):
        logger.info("run started ({})", trigger)
        unexpected: BaseException | None = None
        try:
            with anyio.fail_after(pipeline.timeout):
                async with gateway, anyio.create_task_group() as tg:
                    tg.start_soon(_heartbeat, ctx, journal, name=f"run:{run.id[:8]}:heartbeat")
                    await _run_stages(ctx)
                    tg.cancel_scope.cancel()
        except TimeoutError:
            run.status, run.error = "timed_out", f"run exceeded its timeout of {pipeline.timeout}s"
        except anyio.get_cancelled_exc_class():
            run.status, run.error = "interrupted", "run was cancelled"
            await _finish(ctx, journal)
            raise
        except Exception as exc:
            podium_error = _first_podium_error(exc)
            if podium_error is None:
                # A bug, not a user mistake: record it, then let the traceback through.
                unexpected = exc
                run.status, run.error = "failed", redactor(f"internal error: {exc!r}")
            else:
                run.status, run.error = "failed", redactor(str(podium_error))
        result = await _finish(ctx, journal)
        if run.status == "failed":
            logger.error("run failed: {}", run.error)
        if unexpected is not None:
            raise unexpected
    return result


def _fusion(pipeline: Pipeline) -> dict[str, tuple[str, ...]]:
    """Chains of per-batch stages that run inside the task of the stage before them.

    A transform or check whose only input has no other consumer gets its batches straight
    from that producer's emit call: no stream, no task switch, the same results.
    """
    chains: dict[str, tuple[str, ...]] = {}
    absorbed: set[str] = set()
    for name in pipeline.order:
        if name in absorbed:
            continue
        chain: list[str] = []
        current = name
        while True:
            consumers = pipeline.consumers_of(current)
            if len(consumers) != 1:
                break
            nxt = consumers[0]
            if not fusible(pipeline.stage(nxt)) or len(pipeline.inputs_of(nxt)) != 1:
                break
            chain.append(nxt)
            current = nxt
        chains[name] = tuple(chain)
        absorbed.update(chain)
    return chains


async def _run_stages(ctx: RunContext) -> None:
    pipeline = ctx.pipeline
    chains = _fusion(pipeline)
    inboxes: dict[str, MemoryObjectReceiveStream[Item]] = {}
    senders: dict[str, MemoryObjectSendStream[Item]] = {}
    for name in chains:
        if pipeline.inputs_of(name):
            send, receive = anyio.create_memory_object_stream[Item](EDGE_BUFFER)
            senders[name], inboxes[name] = send, receive
    outboxes: dict[str, list[Outbox]] = {}
    for name, chain in chains.items():
        tail = chain[-1] if chain else name
        outboxes[name] = [senders[c].clone() for c in pipeline.consumers_of(tail)]
    # The originals were only templates for the clones: close them so that each inbox ends
    # exactly when its producers do.
    for template in senders.values():
        template.close()
    async with anyio.create_task_group() as tg:
        for name, chain in chains.items():
            tg.start_soon(
                run_stage,
                ctx,
                pipeline.stage(name),
                inboxes.get(name),
                outboxes[name],
                _fused_stages(pipeline, chain),
                name=f"stage:{name}",
            )


def _fused_stages(pipeline: Pipeline, chain: tuple[str, ...]) -> tuple[Transform | Check, ...]:
    stages = tuple(pipeline.stage(n) for n in chain)
    fused = tuple(s for s in stages if isinstance(s, Transform | Check))
    assert len(fused) == len(stages), "only transforms and checks are fused"
    return fused


async def _finish(ctx: RunContext, journal: Journal) -> RunResult:
    """Count, conclude and record the run; the record is written even while cancelled."""
    checks = list(ctx.checks.values())
    _tally(ctx, checks)
    run = ctx.run
    if run.status == "running":
        run.status = _status(ctx, checks)
        if run.status == "failed" and run.error is None:
            run.error = _failure_reason(ctx, checks)
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
    # Marks advance only after a clean run: every stage finished and nothing anywhere was
    # lost — no failed request, no rejected record, no failed check (an inner merge or a
    # dropping check downstream could otherwise skip a record that never reached a store).
    clean = run.status == "ok" and not ctx.dry_run
    marks = advanced_marks(ctx.cursors) if ctx.cursors and clean else None
    record_error = await _record(ctx, journal, rows, marks)
    duration = (run.finished_at - run.started_at).total_seconds()
    logger.info(
        "run {} in {:.2f}s: {} requests, {} stored", run.status, duration, run.requests, run.stored
    )
    return RunResult(run, ctx.stats, rows, ctx.events, record_error)


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


async def _heartbeat(ctx: RunContext, journal: Journal) -> None:
    """Write the run's counters to its row every few seconds, until cancelled: a run that
    is killed shows what it had done, and a reader sees progress while it runs."""
    while True:
        await anyio.sleep(HEARTBEAT_SECONDS)
        ctx.copy_counts()
        try:
            await journal.heartbeat(ctx.run)
        except PodiumError as exc:  # the store would meet the same trouble: say it, go on
            logger.warning("could not record the run's progress: {}", exc)


async def _record(
    ctx: RunContext, journal: Journal, rows: list[CheckResultRow], marks: dict[str, Any] | None
) -> str | None:
    """Write the run's final record within a deadline (an unreachable database must not
    hold a shutdown forever); why it could not be written, or None."""
    run = ctx.run
    problem: str | None = None
    with anyio.move_on_after(JOURNAL_DEADLINE, shield=True) as scope:
        try:
            await journal.finish(run, ctx.events, rows, marks)
        except PodiumError as exc:
            problem = str(exc)
    if scope.cancelled_caught:
        problem = f"writing it took over {JOURNAL_DEADLINE:g}s and was abandoned"
    if problem is not None:
        problem = f"run {run.id} ended {run.status}, but its record was not written: {problem}"
        logger.error("{}", problem)
    return problem


def _status(ctx: RunContext, checks: list[CheckTally]) -> str:
    """ok, partial or failed. Work that was planned and not done — requests that failed,
    that were never sent, page chains short of their total — is lost work: beyond the
    policy's ratio the run failed, below it the run is partial, never ok."""
    stats = ctx.stats
    planned = stats.logical_requests()
    lost = stats.failed_requests + stats.skipped_requests
    if planned and lost / planned > ctx.pipeline.policy.max_failed_ratio:
        return "failed"
    if any(t.failed and t.check.severity == "error" for t in checks):
        return "failed"
    if lost or stats.rejected or any(t.failed for t in checks):
        return "partial"
    return "ok"


def _failure_reason(ctx: RunContext, checks: list[CheckTally]) -> str:
    """Why the run failed: what was lost, and its first causes."""
    failed_checks = [t for t in checks if t.failed and t.check.severity == "error"]
    stats = ctx.stats
    if failed_checks:
        reason = "checks failed: " + ", ".join(
            f"{t.check.name} ({t.failed} of {t.passed + t.failed})" for t in failed_checks
        )
    else:
        planned = max(1, stats.logical_requests())
        lost = [f"{stats.failed_requests} of {planned} requests failed"]
        if stats.skipped_requests:
            lost.append(f"{stats.skipped_requests} were not sent")
        reason = (
            f"{', '.join(lost)}: more than the policy's max_failed_ratio of "
            f"{ctx.pipeline.policy.max_failed_ratio:g}"
        )
    causes = ctx.causes.describe()
    return f"{reason} — {causes}" if causes else reason


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
