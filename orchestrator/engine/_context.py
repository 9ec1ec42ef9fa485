"""What the stage tasks of one run share: counters, events, check tallies, the gateway."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
from loguru import logger

from podium.pipeline import Pipeline

from ..alerts import AlertRule
from ..http import Gateway
from ..storage import (
    MAX_EVENTS_PER_RUN,
    Database,
    DeadLetterRow,
    Journal,
    Mark,
    Progress,
    RunEventRow,
    RunRow,
)
from ._causes import Causes
from ._checks import CheckTally
from ._durability import DurabilityPlan
from ._incremental import Cursors
from ._stats import RunStats

LOGGED_PER_KIND = 20


@dataclass(slots=True)
class RunContext:
    run: RunRow
    pipeline: Pipeline
    stats: RunStats
    gateway: Gateway
    database: Database
    params: dict[str, Any]
    dry_run: bool
    checks: dict[str, CheckTally] = field(default_factory=dict)
    events: list[RunEventRow] = field(default_factory=list)
    dropped_events: int = 0
    # Incremental fetches' high-water marks, by fetch stage name.
    cursors: dict[str, Cursors] = field(default_factory=dict)
    causes: Causes = field(default_factory=Causes)
    # Warnings logged per event kind; past LOGGED_PER_KIND the rest are counted, not logged.
    logged: Counter[str] = field(default_factory=Counter)
    journal: Journal | None = None
    durability: DurabilityPlan = field(default_factory=lambda: DurabilityPlan({}))
    # What earlier attempts of a resumed run carried to its ends (None: a fresh run).
    progress: Progress | None = None
    # Whether this run writes checkpoints (a dry run stores nothing, so it carries nothing).
    progress_kept: bool = True
    # Marks of run ends that store nothing, committed with the next heartbeat.
    pending_marks: dict[str, list[Mark]] = field(default_factory=dict)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    # Counters of earlier attempts (a resumed run's row accounts for all of them).
    base: dict[str, Any] = field(default_factory=dict)
    # A replay: for each fetch stage, the only items it sends (from dead letters).
    replay: dict[str, list[DeadLetterRow]] | None = None
    # Set by the stage whose failure ended the run: "fail" leaves its side effects be.
    failure_policy: str | None = None
    # Items whose workers wait to hear their mark was committed by every end it reaches.
    acks: dict[tuple[str, str, int], _Ack] = field(default_factory=dict)
    # Workers of acknowledged stages still running: when as many acks are pending, every
    # one of them waits on a commit (a store then commits without lingering).
    ack_workers: int = 0
    # The pipeline's alert rules: the run's outcomes are applied to them when it ends.
    rules: tuple[AlertRule, ...] = ()
    # Why the run stopped early, cleanly (a connector's API quota is used up): the fetch
    # stages send nothing more, what was fetched is stored, the run ends partial.
    stopped: str | None = None

    def await_ack(self, mark: Mark, ends: int) -> anyio.Event:
        """An event set once ``ends`` run ends have committed ``mark`` (create it before
        the batch goes out, so an end that is quick cannot miss it)."""
        ack = self.acks[mark.stage, mark.item, mark.page] = _Ack(ends)
        return ack.event

    def acknowledge(self, marks: Iterable[Mark]) -> None:
        """A run end committed these marks."""
        for mark in marks:
            ack = self.acks.get((mark.stage, mark.item, mark.page))
            if ack is not None:
                ack.pending -= 1
                if ack.pending <= 0:
                    del self.acks[mark.stage, mark.item, mark.page]
                    ack.event.set()

    async def record_step(self, stage: str, item: str, compensation: dict[str, Any]) -> None:
        """A side effect succeeded: remember how to undo it, now, in its own transaction."""
        if self.journal is not None and not self.dry_run:
            await self.journal.record_step(self.run.id, stage, item, compensation)

    def event(self, kind: str, message: str, *, stage: str | None = None, **detail: Any) -> None:
        """Record something that went wrong but did not stop the run. Everything recorded
        passes the run's redactor: the message, and every text inside ``detail``."""
        redact = self.gateway.redact
        message = redact(message)
        detail = redact.tree(detail)
        self.causes.add(kind, message, detail)
        self.logged[kind] += 1
        if self.logged[kind] <= LOGGED_PER_KIND:
            logger.warning("{}: {}", kind.replace("_", " "), message)
        if len(self.events) < MAX_EVENTS_PER_RUN:
            self.events.append(
                RunEventRow(
                    run_id=self.run.id, stage=stage, kind=kind, message=message, detail=detail
                )
            )
        else:
            self.dropped_events += 1

    def copy_counts(self) -> None:
        """The live counters into the run's row (its heartbeat writes them as they are),
        added to what earlier attempts of a resumed run did."""
        run, stats, base = self.run, self.stats, self.base
        live = {
            "requests": stats.requests,
            "retries": stats.retries,
            "failed_requests": stats.failed_requests,
            "skipped_requests": stats.skipped_requests,
            "records_in": stats.records_in(),
            "records_out": stats.records_out(),
            "rejected": stats.rejected,
            "stored": stats.stored,
        }
        for name, value in live.items():
            setattr(run, name, int(base.get(name, 0)) + value)
        stages = {name: s.as_dict() for name, s in stats.stages.items()}
        run.stages = _add_stages(base.get("stages") or {}, stages)

    def dead_letter(self, row: DeadLetterRow) -> None:
        """Keep what failed for good (redacted) for ``podium dead-letters`` and replay —
        unless the pipeline keeps none (a monitor); a compensation that failed is kept
        whatever the policy: it is a side effect nobody undid."""
        if row.kind != "compensation" and not self.pipeline.policy.dead_letters:
            return
        redact = self.gateway.redact.tree
        row.binding = redact(row.binding) if row.binding is not None else None
        row.request = redact(row.request) if row.request is not None else None
        row.record = redact(row.record) if row.record is not None else None
        row.cause = self.gateway.redact(row.cause)
        self.dead_letters.append(row)

    async def flush_marks(self) -> None:
        """Commit the marks of the run's ends that store nothing."""
        if self.journal is None or not self.pending_marks:
            return
        pending, self.pending_marks = self.pending_marks, {}
        for sink, marks in pending.items():
            await self.journal.commit_marks(self.run.id, sink, marks)

    def response_checks(self, fetch_name: str) -> list[CheckTally]:
        return [
            tally
            for tally in self.checks.values()
            if tally.check.on == "responses"
            and self.pipeline.inputs_of(tally.check.name) == (fetch_name,)
        ]


class _Ack:
    __slots__ = ("event", "pending")

    def __init__(self, ends: int) -> None:
        self.pending = ends
        self.event = anyio.Event()


def _add_stages(base: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """Per-stage counts of earlier attempts plus this one's."""
    out: dict[str, Any] = {}
    for name, counts in live.items():
        before = base.get(name) or {}
        out[name] = {
            key: (value + before.get(key, 0)) if isinstance(value, int) else value
            for key, value in counts.items()
        }
        for key, value in before.items():
            out[name].setdefault(key, value)
    return out
