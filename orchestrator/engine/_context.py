"""What the stage tasks of one run share: counters, events, check tallies, the gateway."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from podium.pipeline import Pipeline

from ..http import Gateway
from ..storage import MAX_EVENTS_PER_RUN, Database, RunEventRow, RunRow
from ._checks import CheckTally
from ._incremental import CursorTracker
from ._stats import RunStats


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

    def event(self, kind: str, message: str, *, stage: str | None = None, **detail: Any) -> None:
        """Record something that went wrong but did not stop the run."""
        message = self.gateway.redact(message)
        logger.warning("{}: {}", kind.replace("_", " "), message)
        if len(self.events) < MAX_EVENTS_PER_RUN:
            self.events.append(
                RunEventRow(
                    run_id=self.run.id, stage=stage, kind=kind, message=message, detail=detail
                )
            )
        else:
            self.dropped_events += 1

    def response_checks(self, fetch_name: str) -> list[CheckTally]:
        return [
            tally
            for tally in self.checks.values()
            if tally.check.on == "responses"
            and self.pipeline.inputs_of(tally.check.name) == (fetch_name,)
        ]
