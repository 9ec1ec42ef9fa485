"""How stage tasks pass records: bounded streams of ``(source stage, batch, marks)``.

Every stage reads one inbox — producers hold clones of its send side, so the inbox ends
when all of them are done — and writes to one outbox per consumer. Bounded buffers give
backpressure: a slow store slows the fetches down instead of letting records pile up.

*Marks* travel with the batches they were produced with: "item 12 of stage ``pages``,
page 3, chain done". Stages pass them on unchanged (an empty batch still carries its
marks, so an item whose records were all filtered out still counts as carried), an
aggregate holds them until it emits, and each end of the run commits them: a store in
the transaction that stores the rows, any other end in a checkpoint of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from anyio.abc import ObjectReceiveStream, ObjectSendStream

from podium.pipeline import Record

from ..storage import Mark
from . import _streams
from ._context import RunContext

Marks = tuple[Mark, ...]
Item = tuple[str, list[Record], Marks]
Inbox = ObjectReceiveStream[Item]
Outbox = ObjectSendStream[Item]
Emit = Callable[[list[Record], Marks], Awaitable[None]]


def make_emit(ctx: RunContext, name: str, outboxes: list[Outbox]) -> Emit:
    """Send a batch to every consumer; each extra consumer gets its own copy of every
    record, so a stage in one branch cannot add, change or drop another branch's fields.
    The copies are shallow: a callable that mutates nested values in place must copy them.

    With no consumer, ``name`` is an end of the run: its marks are collected for the
    run's checkpoint (a store commits its own marks and never emits)."""
    if not outboxes:

        async def end(batch: list[Record], marks: Marks) -> None:
            if marks and ctx.progress_kept:
                ctx.pending_marks.setdefault(name, []).extend(marks)
                # Processed: this end keeps nothing a crash could lose, so it need not
                # hold up the worker until its checkpoint is written.
                ctx.acknowledge(marks)

        return end
    first, rest = outboxes[0], outboxes[1:]

    async def emit(batch: list[Record], marks: Marks) -> None:
        if not batch and not marks:
            return
        for outbox in rest:
            await _streams.send(outbox, (name, [dict(r) for r in batch], marks))
        await _streams.send(first, (name, batch, marks))

    return emit


async def batches(ctx: RunContext, name: str, inbox: Inbox | None) -> AsyncIterator[Item]:
    """Every item of a stage's inbox, counted as the stage's records in."""
    if inbox is None:
        return
    stats = ctx.stats.stages[name]
    async with inbox:
        async for source, batch, marks in _streams.drain(inbox):
            stats.records_in += len(batch)
            yield source, batch, marks
