"""What the stage tasks of one run share: counters, events, check tallies, the gateway."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from podium.pipeline import Pipeline

from ..http import Gateway
from ..storage import MAX_EVENTS_PER_RUN, Database, RunEventRow, RunRow
from ._causes import Causes
from ._checks import CheckTally
from ._incremental import CursorTracker
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
    cursors: dict[str, CursorTracker] = field(default_factory=dict)
    causes: Causes = field(default_factory=Causes)
    # Warnings logged per event kind; past LOGGED_PER_KIND the rest are counted, not logged.
    logged: Counter[str] = field(default_factory=Counter)

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
        """The live counters into the run's row (its heartbeat writes them as they are)."""
        run, stats = self.run, self.stats
        run.requests = stats.requests
        run.retries = stats.retries
        run.failed_requests = stats.failed_requests
        run.skipped_requests = stats.skipped_requests
        run.records_in = stats.records_in()
        run.records_out = stats.records_out()
        run.rejected = stats.rejected
        run.stored = stats.stored
        run.stages = {name: s.as_dict() for name, s in stats.stages.items()}

    def response_checks(self, fetch_name: str) -> list[CheckTally]:
        return [
            tally
            for tally in self.checks.values()
            if tally.check.on == "responses"
            and self.pipeline.inputs_of(tally.check.name) == (fetch_name,)
        ]
