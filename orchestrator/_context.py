"""What the stage tasks of one run share: counters, events, check tallies, the gateway."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from pipeline import Check, Pipeline, truthy

from ._database import Database
from ._gateway import Gateway
from ._incremental import CursorTracker
from ._journal import MAX_EVENTS_PER_RUN, CheckResultRow, RunEventRow, RunRow
from ._stats import RunStats

SAMPLES_PER_CHECK = 5


@dataclass
class CheckTally:
    """Pass/fail counts of one check over a run, with a few failing samples."""

    check: Check
    # Samples are stored with the run: they pass through the run's redactor first.
    redact: Callable[[Any], Any] = lambda value: value
    passed: int = 0
    failed: int = 0
    samples: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._search = self.check.expr.search

    def observe(self, data: Any) -> bool:
        if truthy(self._search(data)):
            self.passed += 1
            return True
        self.failed += 1
        if len(self.samples) < SAMPLES_PER_CHECK:
            self.samples.append(self.redact(data))
        return False

    def row(self, run_id: str) -> CheckResultRow:
        return CheckResultRow(
            run_id=run_id,
            name=self.check.name,
            target=self.check.on,
            expect=self.check.expect,
            severity=self.check.severity,
            passed=self.passed,
            failed=self.failed,
            ok=self.failed == 0,
            samples=self.samples,
        )


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
