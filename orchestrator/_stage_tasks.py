"""One task per stage, connected by bounded streams of record batches.

Every stage reads one inbox of ``(source stage, batch)`` items — producers hold clones of
its send side, so the inbox ends when all of them are done — and writes to one outbox
per consumer. Bounded buffers give backpressure: a slow store slows the fetches down
instead of letting records pile up in memory.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from loguru import logger

from pipeline import (
    Aggregate,
    AnyStage,
    Check,
    Fetch,
    PipelineError,
    PodiumError,
    Record,
    RequestFailed,
    ResponseError,
    StageError,
    Store,
    Transform,
    lookup,
)

from . import _streams
from ._context import RunContext
from ._tables import TableWriter

Item = tuple[str, list[Record]]
Inbox = ObjectReceiveStream[Item]
Outbox = ObjectSendStream[Item]
Emit = Callable[[list[Record]], Awaitable[None]]
AGGREGATE_CHUNK = 1000
REJECT_SAMPLES = 20


def make_emit(name: str, outboxes: list[Outbox]) -> Emit:
    """Send a batch to every consumer; each extra consumer gets its own copy of every
    record, so a stage in one branch cannot add, change or drop another branch's fields.
    The copies are shallow: a callable that mutates nested values in place must copy them."""
    if not outboxes:

        async def discard(batch: list[Record]) -> None:
            return None

        return discard
    first, rest = outboxes[0], outboxes[1:]

    async def emit(batch: list[Record]) -> None:
        for outbox in rest:
            await _streams.send(outbox, (name, [dict(r) for r in batch]))
        await _streams.send(first, (name, batch))

    return emit


async def _batches(ctx: RunContext, name: str, inbox: Inbox | None) -> AsyncIterator[Item]:
    if inbox is None:
        return
    stats = ctx.stats.stages[name]
    async with inbox:
        async for source, batch in _streams.drain(inbox):
            stats.records_in += len(batch)
            yield source, batch


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
            emit = make_emit(fused[-1].name if fused else stage.name, outboxes)
            for step_stage in reversed(fused):
                emit = _emit_through(ctx, step_stage, emit)
            if isinstance(stage, Fetch):
                await _fetch(ctx, stage, inbox, emit)
            elif isinstance(stage, Transform | Check):
                step = batch_step(ctx, stage)
                async for _source, batch in _batches(ctx, stage.name, inbox):
                    out = await step(batch)
                    if out:
                        await emit(out)
            elif isinstance(stage, Aggregate):
                await _aggregate(ctx, stage, inbox, emit)
            elif isinstance(stage, Store):
                await _store(ctx, stage, inbox)
        for done in (stage, *fused):
            ctx.stats.stages[done.name].finished = True
            logger.debug("stage {} finished: {}", done.name, ctx.stats.stages[done.name].as_dict())


def fusible(stage: AnyStage) -> bool:
    """Stages that work batch by batch with no state of their own can run inline."""
    return isinstance(stage, Transform | Check)


def _emit_through(ctx: RunContext, stage: Transform | Check, emit: Emit) -> Emit:
    stats = ctx.stats.stages[stage.name]
    step = batch_step(ctx, stage)

    async def emit_through(batch: list[Record]) -> None:
        stats.records_in += len(batch)
        out = await step(batch)
        if out:
            await emit(out)

    return emit_through


def batch_step(
    ctx: RunContext, stage: Transform | Check
) -> Callable[[list[Record]], Awaitable[list[Record]]]:
    """The per-batch work of a transform or check stage, counted in its stats."""
    stats = ctx.stats.stages[stage.name]
    if isinstance(stage, Check):
        tally = ctx.checks[stage.name]
        observe = tally.observe
        on_records = stage.on == "records"

        async def check(batch: list[Record]) -> list[Record]:
            if on_records:
                if stage.drop:
                    batch = [r for r in batch if observe(r)]
                else:
                    for record in batch:
                        observe(record)
            stats.records_out += len(batch)
            return batch

        return check

    async def transform(batch: list[Record]) -> list[Record]:
        try:
            out, rejected = await stage.apply(batch)
        except PodiumError:
            raise
        except Exception as exc:  # user code: report it as this stage's failure, in one line
            target = f" ({getattr(stage.call, '__qualname__', stage.call)})" if stage.call else ""
            raise StageError(
                f"transform {stage.name!r}{target} raised {type(exc).__name__}: {exc}"
            ) from exc
        if rejected:
            before = stats.rejected
            stats.rejected += len(rejected)
            for record, reason in rejected[: max(0, REJECT_SAMPLES - before)]:
                ctx.event("record_rejected", reason, stage=stage.name, record=_jsonable(record))
        stats.records_out += len(out)
        return out

    return transform


# -- fetch -------------------------------------------------------------------------------------
async def _fetch(ctx: RunContext, stage: Fetch, inbox: Inbox | None, emit: Emit) -> None:
    connector = ctx.gateway.connector(stage.connector)
    stats = ctx.stats.stages[stage.name]
    planned = stage.fan_out_size()
    workers = (
        connector.config.concurrency
        if planned is None
        else min(planned, connector.config.concurrency)
    )
    workers = max(1, workers)
    response_checks = ctx.response_checks(stage.name)
    params = ctx.params
    cursor = ctx.cursors.get(stage.name)
    since = cursor.params() if cursor is not None else None

    def bad_response(exc: ResponseError, url: str) -> None:
        stats.failed += 1
        ctx.stats.connectors[stage.connector].failed += 1
        url = ctx.gateway.redact(url)
        ctx.event("bad_response", f"{url}: {exc.message}", stage=stage.name, url=url)

    async def fetch_page(request: Any, carried: dict[str, Any] | None) -> Any:
        """One request's records, emitted; returns (response, records), or None if it failed."""
        stats.requests += 1
        response = None
        try:
            response = await ctx.gateway.send(stage.connector, request)
            for tally in response_checks:
                tally.observe(response.as_check_data())
            records = connector.records(stage, response)
            if cursor is not None:
                cursor.observe(records)
        except RequestFailed as exc:
            stats.failed += 1
            ctx.event(
                "request_failed", exc.message, stage=stage.name, url=exc.url, status=exc.status
            )
            return None
        except ResponseError as exc:
            bad_response(exc, response.url if response is not None else request.url)
            return None
        if carried:
            for record in records:
                record.update(carried)
        stats.records_out += len(records)
        if records:
            await emit(records)
        return response, records

    async def fetch_pages(requests: list[Any], carried: dict[str, Any] | None) -> None:
        # Pages known in advance, sent concurrently; the gateway's limiters bound them.
        pages = iter(requests)

        async def work_pages() -> None:
            for request in pages:
                await fetch_page(request, carried)

        async with anyio.create_task_group() as tg:
            for i in range(min(len(requests), connector.config.concurrency)):
                tg.start_soon(work_pages, name=f"{stage.name}:pages-{i}")

    async def fetch_item(item: dict[str, Any]) -> None:
        values = {**item, "params": params} if params else item
        try:
            request = connector.build_request(stage, values)
        except PipelineError as exc:
            stats.requests += 1
            stats.failed += 1
            ctx.event("request_not_built", exc.message, stage=stage.name)
            return
        if since:
            request = request.with_params(**since)
        paginator = connector.paginator(stage)
        if paginator is not None:
            request = paginator.first(request)
        carried = (
            {out: lookup(item, src) for out, src in stage.carry.items()} if stage.carry else None
        )
        pending: Any = request
        while pending is not None:
            page = await fetch_page(pending, carried)
            if page is None or paginator is None:
                return
            try:
                pending = paginator.next(pending, *page)
            except ResponseError as exc:  # the page's body cannot say what comes next
                bad_response(exc, page[0].url)
                return
            if pending is not None:
                rest = paginator.rest(pending)
                if rest is not None:
                    await fetch_pages([pending, *rest], carried)
                    return

    async def work_through(items: Iterator[dict[str, Any]]) -> None:
        # Workers share one iterator: taking the next item costs no scheduling.
        for item in items:
            await fetch_item(item)
            stats.done += 1

    if not stage.inputs:
        items = stage.fan_out_items()
        async with anyio.create_task_group() as tg:
            for i in range(workers):
                tg.start_soon(work_through, items, name=f"{stage.name}:worker-{i}")
        return

    item_send, item_recv = anyio.create_memory_object_stream[dict[str, Any]](workers)

    async def feed() -> None:
        async with item_send:
            async for _source, batch in _batches(ctx, stage.name, inbox):
                for record in batch:
                    await _streams.send(item_send, record)

    async def work(items: ObjectReceiveStream[dict[str, Any]]) -> None:
        async with items:
            async for item in _streams.drain(items):
                await fetch_item(item)
                stats.done += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(feed, name=f"{stage.name}:feed")
        async with item_recv:
            for i in range(workers):
                tg.start_soon(work, item_recv.clone(), name=f"{stage.name}:worker-{i}")


# -- aggregate ---------------------------------------------------------------------------------
async def _aggregate(ctx: RunContext, stage: Aggregate, inbox: Inbox | None, emit: Emit) -> None:
    stats = ctx.stats.stages[stage.name]
    accumulator = stage.accumulator(ctx.pipeline.inputs_of(stage.name))
    async for source, batch in _batches(ctx, stage.name, inbox):
        if stage.merge_on is not None:
            accumulator.add(source, batch)  # type: ignore[call-arg]
        else:
            accumulator.add(batch)  # type: ignore[call-arg]
    results = accumulator.results()
    stats.records_out += len(results)
    for i in range(0, len(results), AGGREGATE_CHUNK):
        await emit(results[i : i + AGGREGATE_CHUNK])


# -- store -------------------------------------------------------------------------------------
async def _store(ctx: RunContext, stage: Store, inbox: Inbox | None) -> None:
    stats = ctx.stats.stages[stage.name]
    writer = TableWriter(ctx.database, stage)
    keys = stage.key
    buffer: list[Record] = []
    last_flush = time.monotonic()

    async def flush() -> None:
        nonlocal buffer, last_flush
        rows, buffer = buffer, []
        last_flush = time.monotonic()
        if not rows:
            return
        written = len(rows) if ctx.dry_run else await writer.write(rows)
        ctx.stats.stored += 0 if ctx.dry_run else written
        stats.records_out += written
        stats.done += 1

    async for _source, batch in _batches(ctx, stage.name, inbox):
        if len(keys) == 1:
            key = keys[0]
            good = [r for r in batch if r.get(key) is not None]
        else:
            good = [r for r in batch if all(r.get(k) is not None for k in keys)]
        if len(good) != len(batch):
            missing = len(batch) - len(good)
            stats.rejected += missing
            ctx.event(
                "record_rejected",
                f"{missing} record(s) without a value for key {', '.join(keys)}",
                stage=stage.name,
            )
        buffer.extend(good)
        if len(buffer) >= stage.batch_size or time.monotonic() - last_flush >= stage.flush_seconds:
            while len(buffer) > stage.batch_size:
                rest = buffer[stage.batch_size :]
                buffer = buffer[: stage.batch_size]
                await flush()
                buffer = rest
            await flush()
    await flush()


def _jsonable(record: Record) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | type(None)) else str(v)
        for k, v in record.items()
    }
