"""A store stage's task: buffer records and upsert them in batches, one transaction each."""

from __future__ import annotations

import time

from podium.pipeline import Record, Store

from ..storage import TableWriter
from ._context import RunContext
from ._stage_io import Inbox, batches


class StoreTask:
    """Runs one store stage: a batch is written when it is full or ``flush_seconds`` old."""

    def __init__(self, ctx: RunContext, stage: Store) -> None:
        self.ctx = ctx
        self.stage = stage
        self.stats = ctx.stats.stages[stage.name]
        self.writer = TableWriter(ctx.database, stage)
        self.buffer: list[Record] = []
        self.last_flush = time.monotonic()

    async def run(self, inbox: Inbox | None) -> None:
        size = self.stage.batch_size
        async for _source, batch in batches(self.ctx, self.stage.name, inbox):
            self.buffer.extend(self._keyed(batch))
            if (
                len(self.buffer) < size
                and time.monotonic() - self.last_flush < self.stage.flush_seconds
            ):
                continue
            while len(self.buffer) > size:
                await self._flush(size)
            await self._flush(size)
        await self._flush(size)

    def _keyed(self, batch: list[Record]) -> list[Record]:
        """The records that have every key field; the others are rejected, and counted."""
        keys = self.stage.key
        if len(keys) == 1:
            key = keys[0]
            good = [r for r in batch if r.get(key) is not None]
        else:
            good = [r for r in batch if all(r.get(k) is not None for k in keys)]
        missing = len(batch) - len(good)
        if missing:
            self.stats.rejected += missing
            self.ctx.event(
                "record_rejected",
                f"{missing} record(s) without a value for key {', '.join(keys)}",
                stage=self.stage.name,
            )
        return good

    async def _flush(self, size: int) -> None:
        rows, self.buffer = self.buffer[:size], self.buffer[size:]
        self.last_flush = time.monotonic()
        if not rows:
            return
        written = 0 if self.ctx.dry_run else await self.writer.write(rows)
        self.ctx.stats.stored += written
        self.stats.records_out += written
        self.stats.done += 1
