"""One task per stage; per-batch stages (transforms, checks) may run inside their producer.

``run_stage`` opens the stage's outboxes, builds its emit chain — the fused per-batch
stages first, then the sends to every consumer — and hands over to the stage kind's task.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from loguru import logger

from podium.pipeline import (
    Aggregate,
    AnyStage,
    Check,
    Fetch,
    PodiumError,
    Record,
    StageError,
    Store,
    Transform,
)
from podium.pipeline._refs import ref_name

from ..storage import DeadLetterRow, Mark
from ._context import RunContext
from ._durability import item_key
from ._fetch import FetchTask
from ._stage_io import Emit, Inbox, Marks, Outbox, batches, make_emit
from ._store import StoreTask

AGGREGATE_CHUNK = 1000
REJECT_SAMPLES = 20
BatchStep = Callable[[list[Record]], Awaitable[list[Record]]]


async def run_stage(
    ctx: RunContext,
    stage: AnyStage,
    inbox: Inbox | None,
    outboxes: list[Outbox],
    fused: tuple[Transform | Check, ...] = (),
) -> None:
    """Run one stage task; ``fused`` per-batch stages run inline on its output."""
    with logger.contextualize(stage=stage.name):
        async with AsyncExitStack() as stack:
            for outbox in outboxes:
                await stack.enter_async_context(outbox)
            emit = make_emit(ctx, fused[-1].name if fused else stage.name, outboxes)
            for step_stage in reversed(fused):
                emit = _emit_through(ctx, step_stage, emit)
            if isinstance(stage, Fetch):
                await FetchTask(ctx, stage, emit).run(inbox)
            elif isinstance(stage, Transform | Check):
                step = batch_step(ctx, stage)
                async for _source, batch, marks in batches(ctx, stage.name, inbox):
                    await emit(await step(batch), marks)
            elif isinstance(stage, Aggregate):
                await _aggregate(ctx, stage, inbox, emit)
            elif isinstance(stage, Store):
                await StoreTask(ctx, stage).run(inbox)
        for done in (stage, *fused):
            ctx.stats.stages[done.name].finished = True
            logger.debug("stage {} finished: {}", done.name, ctx.stats.stages[done.name].as_dict())


def fusible(stage: AnyStage) -> bool:
    """Stages that work batch by batch with no state of their own can run inline."""
    return isinstance(stage, Transform | Check)


def _emit_through(ctx: RunContext, stage: Transform | Check, emit: Emit) -> Emit:
    stats = ctx.stats.stages[stage.name]
    step = batch_step(ctx, stage)

    async def emit_through(batch: list[Record], marks: Marks) -> None:
        stats.records_in += len(batch)
        await emit(await step(batch) if batch else batch, marks)

    return emit_through


def batch_step(ctx: RunContext, stage: Transform | Check) -> BatchStep:
    """The per-batch work of a transform or check stage, counted in its stats."""
    if isinstance(stage, Check):
        return _check_step(ctx, stage)
    return _transform_step(ctx, stage)


def _check_step(ctx: RunContext, stage: Check) -> BatchStep:
    stats = ctx.stats.stages[stage.name]
    observe = ctx.checks[stage.name].observe
    on_records, drop = stage.on == "records", stage.drop

    async def check(batch: list[Record]) -> list[Record]:
        if on_records:
            if drop:
                kept = [r for r in batch if observe(r)]
                if len(kept) != len(batch):
                    _dead_letter_dropped(ctx, stage, batch, kept)
                batch = kept
            else:
                for record in batch:
                    observe(record)
        stats.records_out += len(batch)
        return batch

    return check


def _transform_step(ctx: RunContext, stage: Transform) -> BatchStep:
    stats = ctx.stats.stages[stage.name]
    by_record = _by_record(ctx, stage) if stage.steps_by_record else None

    async def transform(batch: list[Record]) -> list[Record]:
        try:
            if by_record is not None:
                called, rejected = await by_record(batch)
                out, more = stage.ops(called) if stage.ops is not None else (called, [])
                rejected += more
            else:
                out, rejected = await stage.apply(batch)
        except PodiumError:
            raise
        except Exception as exc:  # user code: report it as this stage's failure, in one line
            ctx.failure_policy = stage.failure_policy
            raise StageError(
                f"transform {stage.name!r}{_target(stage)} raised {_said(exc)}"
            ) from exc
        if rejected:
            before = stats.rejected
            stats.rejected += len(rejected)
            for record, reason in rejected[: max(0, REJECT_SAMPLES - before)]:
                ctx.event("record_rejected", reason, stage=stage.name, record=_jsonable(record))
            for record, reason in rejected:
                ctx.dead_letter(_record_letter(ctx, stage.name, record, reason))
        stats.records_out += len(out)
        return out

    return transform


async def _aggregate(ctx: RunContext, stage: Aggregate, inbox: Inbox | None, emit: Emit) -> None:
    """Accumulate every input, then emit the results; the inputs' marks go with the last
    chunk, since no item is carried before the aggregate has emitted what it made of it."""
    stats = ctx.stats.stages[stage.name]
    accumulator = stage.accumulator(ctx.pipeline.inputs_of(stage.name))
    held: list[Mark] = []
    async for source, batch, marks in batches(ctx, stage.name, inbox):
        accumulator.add(source, batch)
        held.extend(marks)
    results = accumulator.results()
    stats.records_out += len(results)
    chunks = [results[i : i + AGGREGATE_CHUNK] for i in range(0, len(results), AGGREGATE_CHUNK)]
    for chunk in chunks[:-1]:
        await emit(chunk, ())
    await emit(chunks[-1] if chunks else [], tuple(held))


def _by_record(
    ctx: RunContext, stage: Transform
) -> Callable[[list[Record]], Awaitable[tuple[list[Record], list[tuple[Record, str]]]]]:
    """``call`` record by record: each side effect recorded as a saga step the moment it
    succeeded (with what undoes it), and — with ``on_failure = "continue"`` — a record
    whose call raised rejected instead of ending the run."""
    compensate = stage.compensate
    ref = ref_name(compensate) if compensate is not None else None
    seen: Counter[str] = Counter()

    async def run(batch: list[Record]) -> tuple[list[Record], list[tuple[Record, str]]]:
        out: list[Record] = []
        rejected: list[tuple[Record, str]] = []
        for record in batch:
            given = _jsonable(record) if ref is not None else None
            try:
                result = await stage.call_one(record)
            except Exception as exc:
                if stage.failure_policy != "continue":
                    raise
                rejected.append((record, f"{_target(stage).strip(' ()')} raised {_said(exc)}"))
                continue
            if ref is not None and given is not None:
                digest = item_key(None, given)
                seen[digest] += 1  # identical records are distinct side effects
                step = {"kind": "call", "ref": ref, "record": given,
                        "result": [_jsonable(r) for r in result]}  # fmt: skip
                await ctx.record_step(stage.name, f"{digest}.{seen[digest]}", step)
            out.extend(result)
        return out, rejected

    return run


def _target(stage: Transform) -> str:
    return f" ({getattr(stage.call, '__qualname__', stage.call)})" if stage.call else ""


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _record_letter(ctx: RunContext, stage: str, record: Record, reason: str) -> DeadLetterRow:
    return DeadLetterRow(
        run_id=ctx.run.id,
        pipeline=ctx.pipeline.name,
        stage=stage,
        kind="record",
        record=_jsonable(record),
        cause=reason,
    )


def _dead_letter_dropped(
    ctx: RunContext, stage: Check, batch: list[Record], kept: list[Record]
) -> None:
    kept_ids = {id(r) for r in kept}
    cause = f"failed check {stage.name!r}: {stage.expect_text}"
    for record in batch:
        if id(record) not in kept_ids:
            ctx.dead_letter(_record_letter(ctx, stage.name, record, cause))


def _jsonable(record: Record) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | type(None)) else str(v)
        for k, v in record.items()
    }
