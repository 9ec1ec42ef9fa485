"""How stage tasks pass records: bounded streams of ``(source stage, batch)`` items.

Every stage reads one inbox — producers hold clones of its send side, so the inbox ends
when all of them are done — and writes to one outbox per consumer. Bounded buffers give
backpressure: a slow store slows the fetches down instead of letting records pile up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from anyio.abc import ObjectReceiveStream, ObjectSendStream

from podium.pipeline import Record

from . import _streams
from ._context import RunContext

Item = tuple[str, list[Record]]
Inbox = ObjectReceiveStream[Item]
Outbox = ObjectSendStream[Item]
Emit = Callable[[list[Record]], Awaitable[None]]


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


async def batches(ctx: RunContext, name: str, inbox: Inbox | None) -> AsyncIterator[Item]:
    """Every item of a stage's inbox, counted as the stage's records in."""
    if inbox is None:
        return
    stats = ctx.stats.stages[name]
    async with inbox:
        async for source, batch in _streams.drain(inbox):
            stats.records_in += len(batch)
            yield source, batch
