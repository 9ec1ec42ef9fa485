"""The monitoring side of the journal: alert incidents, the notification outbox, mutes,
check history — the one way the dispatcher, the daemon and the command line use them.

Runs write their part (transitions, history) through ``Journal.finish``, in their final
transaction; everything else goes through here. The SQL is in ``_alerts`` and
``_history``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from ..alerts import AlertRule
from . import _alerts, _dead_letters, _history
from ._database import Database
from ._journal import Journal
from ._schema import utcnow


class Monitoring:
    def __init__(self, database: Database) -> None:
        self.db = database
        self.journal = Journal(database)

    async def _ready(self) -> None:
        await self.journal.create_tables()

    # -- incidents ---------------------------------------------------------------------------
    async def watch(self, rules: Iterable[AlertRule]) -> None:
        await self._ready()
        await self.db.run("recording alert rules", _alerts.watch, list(rules), utcnow())

    async def watched_since(self, rules: Iterable[AlertRule]) -> dict[str, datetime]:
        await self._ready()
        return await self.db.run("reading missed-fire watches", _alerts.watched_since, list(rules))

    async def record_missed(
        self, rule: AlertRule, slots: list[datetime], cause: str
    ) -> list[int] | None:
        return await self.db.run(
            "recording a missed fire", _alerts.record_missed, rule, slots, cause, utcnow()
        )

    async def queue_reminders(
        self, rules: Iterable[AlertRule], now: datetime | None = None
    ) -> list[int]:
        by_key = {(r.alert, r.subject): r for r in rules}
        return await self.db.run(
            "queueing reminders", _alerts.queue_reminders, by_key, now or utcnow()
        )

    async def close_removed(self, rules: Iterable[AlertRule]) -> list[dict[str, Any]]:
        """Close, as ``removed``, the open incidents no rule of ``rules`` (the whole
        config's) watches any more; the states closed."""
        await self._ready()
        current = {(r.alert, r.subject) for r in rules}
        return await self.db.run(
            "closing incidents of removed subjects", _alerts.close_removed, current, utcnow()
        )

    async def states(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        await self._ready()
        return await self.db.run("reading alert states", _alerts.select_states, open_only)

    async def incident_status(self, alert: str, subject: str) -> tuple[str | None, str | None]:
        return await self.db.run("reading an incident", _alerts.incident_status, alert, subject)

    async def down_status(self, alert: str, subject: str, incident: str) -> str | None:
        return await self.db.run(
            "reading an incident's notification", _alerts.down_status, alert, subject, incident
        )

    # -- the outbox --------------------------------------------------------------------------
    async def next_notifications(
        self, limit: int = 20, ids: list[int] | None = None, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        await self._ready()
        return await self.db.run(
            "reading the notification outbox",
            _alerts.next_notifications,
            now or utcnow(),
            limit,
            ids,
        )

    async def claim(self, row: dict[str, Any], node: str, hold: timedelta) -> bool:
        return await self.db.run(
            "claiming a notification", _alerts.claim_notification, row, node, utcnow(), hold
        )

    async def release_claims(self, node: str) -> int:
        await self._ready()
        return await self.db.run("releasing notifications", _alerts.release_claims, node)

    async def settle(self, notification_id: int, **values: Any) -> None:
        await self.db.run(
            "recording a notification's delivery",
            _alerts.settle_notification,
            notification_id,
            values,
        )

    async def notifications(
        self, limit: int = 20, statuses: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        await self._ready()
        return await self.db.run(
            "reading notifications", _alerts.select_notifications, limit, statuses
        )

    async def outbox_counts(self) -> dict[str, int]:
        await self._ready()
        return await self.db.run("counting notifications", _alerts.outbox_counts)

    # -- mutes -------------------------------------------------------------------------------
    async def mute(self, target: str, until: datetime, reason: str | None, by: str | None) -> int:
        await self._ready()
        values = {
            "target": target,
            "until": until,
            "reason": reason,
            "created_by": by,
            "created_at": utcnow(),
        }
        return await self.db.run("recording a mute", _alerts.add_mute, values)

    async def unmute(self, target: str) -> int:
        await self._ready()
        return await self.db.run("ending a mute", _alerts.remove_mutes, target, utcnow())

    async def mutes(self, now: datetime | None = None) -> list[dict[str, Any]]:
        await self._ready()
        return await self.db.run("reading mutes", _alerts.active_mutes, now or utcnow())

    # -- history -----------------------------------------------------------------------------
    async def check_status(self, pipeline: str | None = None) -> list[dict[str, Any]]:
        await self._ready()
        return await self.db.run("reading check states", _history.select_status, pipeline)

    async def check_hours(self, pipeline: str | None, since: datetime) -> list[dict[str, Any]]:
        await self._ready()
        return await self.db.run("reading check history", _history.select_hours, pipeline, since)

    async def prune(
        self, *, keep: timedelta, keep_summaries: timedelta, keep_dead_letters: timedelta
    ) -> dict[str, int]:
        """Delete what ``[history]`` and ``[journal]`` say is old enough; what went."""
        await self._ready()
        now = utcnow()
        pruned = await self.db.run(
            "pruning run history", _history.prune, now - keep, now - keep_summaries
        )
        pruned["notifications"] = await self.db.run(
            "pruning notifications", _alerts.prune_outbox, now - keep
        )
        pruned["dead_letters"] = await self.db.run(
            "pruning dead letters", _dead_letters.prune_dead_letters, now - keep_dead_letters
        )
        return pruned
