"""The daemon's watchdog: fires that did not happen, history housekeeping, and the
checks' state for the daemon's gauges.

A run rule with ``on = ["missed"]`` watches its pipeline's schedule: every fire due
more than ``misfire_after`` (plus the schedule's jitter) ago with no run of the pipeline
started since counts as a failure of the rule — a fire skipped because the previous run
was still going, or dropped while no daemon ran, or lost to a stuck scheduler alike.
The fires missed since the last run (or since the rule was first watched) are counted
once, by whichever node looks first: the journal keeps the latest slot counted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import anyio
from anyio.abc import TaskStatus
from loguru import logger

from podium.orchestrator import Database, Journal
from podium.orchestrator.alerts import AlertRule
from podium.orchestrator.storage import Controls, Monitoring, utcnow
from podium.pipeline import PodiumError, Schedule

from ._models import Plan
from ._slots import overdue

WATCH_EVERY = 5.0
PRUNE_EVERY = timedelta(hours=1)


class Watchdog:
    def __init__(
        self,
        database: Database,
        plan: Callable[[], Plan],
        on_check_status: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.monitoring = Monitoring(database)
        self.journal = Journal(database)
        self._plan = plan
        self._pruned_at: datetime | None = None
        # Called with every check's journal state each round (the daemon's gauges).
        self._on_check_status = on_check_status

    async def _missed_rules(self) -> list[tuple[AlertRule, Schedule]]:
        """The rules watching for missed fires of schedules that are not paused (in the
        config or by hand: a paused pipeline misses nothing)."""
        plan = self._plan()
        paused = await Controls(self.monitoring.db).paused()
        out = []
        for name, rules in plan.config.rules.items():
            schedule = plan.schedules.get(name)
            if schedule is None or schedule.paused or name in paused:
                continue
            out += [(rule, schedule) for rule in rules if rule.watches_missed]
        return out

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Until cancelled: look for missed fires every few seconds, prune hourly.

        Started once the first look is done: a run's start moves the baseline past the
        fires missed before it, so a daemon must count what was missed while none ran
        before it fires (or catches up) anything.
        """
        while True:
            try:
                await self.look()
            except PodiumError as exc:  # the database is away: the next round tries again
                logger.warning("the watchdog could not look at the journal: {}", exc)
            task_status.started()
            task_status = anyio.TASK_STATUS_IGNORED
            try:
                await self.housekeeping()
                if self._on_check_status is not None:
                    self._on_check_status(await self.monitoring.check_status())
            except PodiumError as exc:
                logger.warning("the watchdog could not prune the history: {}", exc)
            await anyio.sleep(WATCH_EVERY)

    async def look(self, now: datetime | None = None) -> int:
        """Count the fires missed by now; how many rules saw new ones."""
        watched = await self._missed_rules()
        if not watched:
            return 0
        await self.monitoring.watch(rule for rule, _ in watched)
        since = await self.monitoring.watched_since(rule for rule, _ in watched)
        now = now or utcnow()
        grace = self._plan().settings.misfire_after
        found = 0
        for rule, schedule in watched:
            baseline = since.get(f"{rule.alert}\0{rule.subject}")
            if baseline is None:
                continue
            # The latest fire that ran (its nominal time): a run started by hand is not a
            # fire, and does not hide the ones the schedule missed.
            last = await self.journal.last_fire(rule.pipeline)
            if last is not None and last > baseline:
                baseline = last
            missed = overdue(schedule, baseline, now - grace - schedule.jitter)
            if not missed:
                continue
            cause = (
                "{count} {fires} did not start: the latest was due at {latest}, and none "
                f"has run since {baseline.isoformat(timespec='seconds')}"
            )
            queued = await self.monitoring.record_missed(rule, missed, cause)
            if queued is not None:
                found += 1
                logger.bind(pipeline=rule.pipeline).warning(
                    "missed fires: {} (the latest due at {})",
                    len(missed),
                    missed[-1].isoformat(timespec="seconds"),
                )
        return found

    async def housekeeping(self, now: datetime | None = None) -> dict[str, int] | None:
        """Prune history, hourly (the first round prunes at once)."""
        now = now or utcnow()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return None
        self._pruned_at = now
        config = self._plan().config
        pruned = await self.monitoring.prune(
            keep=config.history.keep,
            keep_summaries=config.history.keep_summaries,
            keep_dead_letters=config.journal.keep_dead_letters,
        )
        if any(pruned.values()):
            logger.info(
                "pruned history: {}", ", ".join(f"{n} {what}" for what, n in pruned.items() if n)
            )
        return pruned
