"""A store stage's task: buffer records and upsert them in batches, one transaction each.

Each transaction also commits the checkpoint marks of the batches whose rows it holds in
full, and adds its rows to the run's ``stored`` count: a crash can never leave progress
recorded without its rows, rows without their progress, or a count that disagrees.
"""

from __future__ import annotations

import time
from functools import partial

import anyio
from sqlalchemy import Connection

from podium.pipeline import Record, Store

from ..storage import Mark, TableWriter, add_stored, commit_marks, write_counts
from ._context import RunContext
from ._stage_io import Inbox, Marks, batches

# Event-loop turns a store waits for more batches before it commits for waiting workers:
# a response takes two or three turns from its socket to the store's inbox.
LINGER_TURNS = 3


class StoreTask:
    """Runs one store stage: a batch is written when it is full or ``flush_seconds`` old."""

    def __init__(self, ctx: RunContext, stage: Store) -> None:
        self.ctx = ctx
        self.stage = stage
        self.stats = ctx.stats.stages[stage.name]
        self.writer = TableWriter(ctx.database, stage)
        self.buffer: list[Record] = []
        # Marks waiting for their batch's rows: (buffer position after the batch, marks).
        self.marks: list[tuple[int, Marks]] = []
        self.last_flush = time.monotonic()

    async def run(self, inbox: Inbox | None) -> None:
        size = self.stage.batch_size
        async for _source, batch, marks in batches(self.ctx, self.stage.name, inbox):
            self.buffer.extend(self._keyed(batch))
            if marks and self.ctx.progress_kept:
                self.marks.append((len(self.buffer), marks))
            due = time.monotonic() - self.last_flush >= self.stage.flush_seconds
            # Workers waiting for their marks wait on this store: with nothing more to
            # read right now, it commits what it has instead of filling a batch.
            # When some of them are still fetching, it first lingers a few loop turns for
            # their batches (group commit, see _more_coming).
            waited_on = bool(self.marks) and _drained(inbox)
            if (
                len(self.buffer) < size
                and not due
                and (not waited_on or await self._more_coming(inbox))
            ):
                continue
            while len(self.buffer) > size:
                await self._flush(size)
            await self._flush(size)
        await self._flush(size)

    async def _more_coming(self, inbox: Inbox | None) -> bool:
        """Group commit: whether another batch arrives within a few loop turns while some
        worker is still fetching. Each commit costs a transaction; the workers that wait
        on it gain nothing from one per page, and a commit for a batch that is on its way
        would hold all of them up the same. With every worker waiting, nothing more can
        come: commit at once (a sequential chain never lingers)."""
        ctx = self.ctx
        for _ in range(LINGER_TURNS):
            if len(ctx.acks) >= ctx.ack_workers:
                return False
            await anyio.lowlevel.checkpoint()
            if not _drained(inbox):
                return True
        return False

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

    def _due_marks(self, written: int) -> list[Mark]:
        """The marks of every batch whose last row is among the first ``written``."""
        due = [mark for end, marks in self.marks if end <= written for mark in marks]
        self.marks = [(end - written, marks) for end, marks in self.marks if end > written]
        return due

    async def _flush(self, size: int) -> None:
        rows, self.buffer = self.buffer[:size], self.buffer[size:]
        self.last_flush = time.monotonic()
        marks = self._due_marks(len(rows))
        if not rows and not marks:
            return
        ctx = self.ctx
        if ctx.dry_run:
            written = 0
        elif not rows:
            await ctx.database.run(
                "recording the run's progress", commit_marks, ctx.run.id, self.stage.name, marks
            )
            ctx.acknowledge(marks)
            return
        else:
            also = partial(self._progress, marks=marks, rows=len(rows))
            written = await self.writer.write(rows, also=also)
            ctx.acknowledge(marks)  # committed: the workers waiting on them go on
        ctx.stats.stored += written
        self.stats.records_out += written
        self.stats.done += 1

    def _progress(self, conn: Connection, *, marks: list[Mark], rows: int) -> None:
        """In the rows' own transaction: their marks, the run's stored count and its other
        counters — so a killed run's row reads requests and records as of its last commit,
        beside the exact `stored` (as of its last heartbeat, `records_in` fell short of
        `stored`). One prebuilt UPDATE: ~0.1 ms a commit (W2, a commit per page: +6 %)."""
        ctx = self.ctx
        if marks:
            commit_marks(conn, ctx.run.id, self.stage.name, marks)
        if ctx.progress_kept:
            add_stored(conn, ctx.run.id, rows)
            ctx.copy_counts()
            write_counts(conn, ctx.run)


def _drained(inbox: Inbox | None) -> bool:
    """Whether nothing more is waiting in the store's inbox at this moment."""
    statistics = getattr(inbox, "statistics", None)
    return statistics is None or statistics().current_buffer_used == 0
