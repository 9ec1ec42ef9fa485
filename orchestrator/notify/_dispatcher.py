"""The dispatcher: drains the notification outbox that runs fill, with retries.

Runs never wait on a notifier: their final transaction only queues outbox rows. A
dispatcher — one in every daemon, and a short-lived one in ``podium run`` for the run's
own notifications — takes each ready row with a claim (an atomic conditional update, so
among several nodes one sends it), decides, sends, and records what became of it:

- ``sent`` once every destination has accepted it; or ``pending`` again after a
  failure, retried with the alert's backoff until ``deliver_by``, then ``failed`` with
  each destination's last reason (also when sending again cannot help: a URL Apprise
  cannot use, a webhook answering 4xx). The row records which destinations accepted
  it (``delivered``), and a retry sends only to the others: a mail server that took a
  "down" is not sent it again while the webhook beside it is away;
- ``muted``: a mute or a maintenance window covers it — recorded, not sent. A "down"
  muted while its incident is still open is ``held`` instead and looked at again: sent
  if the incident outlasts the mute, muted for good once it resolves, and its
  "resolved" is muted with it (a resolve is news only to someone told of the outage);
- ``superseded``: a reminder whose incident resolved before it went out.

Rows of one (alert, subject) go strictly in order: a "resolved" never overtakes its
"down". Delivery is at least once only where it cannot be helped: a node that dies
after sending and before recording the attempt leaves the claim to expire, and the
destinations not yet recorded get it again — webhooks carry an ``Idempotency-Key``
for that; mail cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import anyio
from loguru import logger

from podium.pipeline import NotifyError, PodiumError

from .._redact import Redactor
from ..alerts import Notification
from ..config import Config
from ..storage import Database, Monitoring, utcnow
from ._send import APPRISE_TIMEOUT, send

# How long a claim holds a row: longer than the slowest send (Apprise's 30 s bound).
HOLD = timedelta(minutes=2)
# How often a muted "down" of an open incident is looked at again.
HELD_RECHECK = timedelta(seconds=15)
# Rows looked at per round, and sent at once.
BATCH = 50
CONCURRENT_SENDS = 8


class Dispatcher:
    """Sends what the outbox holds, for the alerts of the config ``config()`` returns
    (read per row, so a reloaded config applies to the next notification)."""

    def __init__(
        self,
        database: Database,
        config: Callable[[], Config],
        *,
        node: str,
        apprise_timeout: float = APPRISE_TIMEOUT,
    ) -> None:
        self.monitoring = Monitoring(database)
        self._config = config
        self.node = node
        self.apprise_timeout = apprise_timeout
        self._limit = anyio.CapacityLimiter(CONCURRENT_SENDS)

    async def dispatch(self, ids: list[int] | None = None) -> int:
        """One round: every ready row (of ``ids``, if given); how many were looked at."""
        rows = await self.monitoring.next_notifications(BATCH, ids)
        async with anyio.create_task_group() as tg:
            for row in rows:
                tg.start_soon(self._guarded, row, name=f"notify:{row['id']}")
        return len(rows)

    async def serve(self, rules: Callable[[], Iterable[Any]], *, every: float = 1.0) -> None:
        """Until cancelled: queue due reminders for ``rules()``, send what is ready."""
        while True:
            try:
                await self.monitoring.queue_reminders(rules())
                await self.dispatch()
            except PodiumError as exc:  # the database is away: the next round tries again
                logger.warning("delivering alert notifications failed: {}", exc)
            await anyio.sleep(every)

    async def deliver(self, ids: list[int], *, within: float) -> list[dict[str, Any]]:
        """Send ``ids`` now, retrying within ``within`` seconds; the rows still pending
        by then (left queued for a daemon to send). A row a mute holds is not waited for."""
        with anyio.move_on_after(within):
            while True:
                await self.dispatch(ids)
                left = await self._pending(ids)
                if not left:
                    return []
                soonest = min(r["next_attempt_at"] for r in left)
                await anyio.sleep(max(0.05, min((soonest - utcnow()).total_seconds(), 1.0)))
        return await self._pending(ids)

    async def _pending(self, ids: list[int]) -> list[dict[str, Any]]:
        rows = await self.monitoring.notifications(len(ids) + 50, ("pending",))
        wanted = set(ids)
        return [r for r in rows if r["id"] in wanted]

    async def _guarded(self, row: dict[str, Any]) -> None:
        async with self._limit:
            try:
                await self._handle(row)
            except PodiumError as exc:
                logger.warning("notification {} could not be handled: {}", row["id"], exc)

    async def _handle(self, row: dict[str, Any]) -> None:
        mon = self.monitoring
        if not await mon.claim(row, self.node, HOLD):
            return  # another node took it
        config = self._config()
        now = utcnow()
        try:
            alert = config.alert(row["alert"])
        except PodiumError as exc:
            await self._settle(row, "failed", f"not sent: {exc}")
            return
        status, incident = await mon.incident_status(row["alert"], row["subject"])
        still_open = status == "open" and incident == row["incident"]
        muted_by = await self._muted_by(config, row, now)
        kind = row["kind"]
        if kind == "reminder" and not still_open:
            await self._settle(row, "superseded", "the incident resolved before it was sent")
            return
        if kind == "resolved":
            down = await mon.down_status(row["alert"], row["subject"], row["incident"] or "")
            if down in ("muted", "held"):
                await self._settle(row, "muted", "its down notification was muted")
                return
        if muted_by is not None:
            if kind == "down" and still_open:
                await self._settle(
                    row, "held", f"held: {muted_by}", next_attempt_at=now + HELD_RECHECK
                )
            else:
                await self._settle(row, "muted", muted_by)
            return
        await self._send(row, alert, config)

    async def _send(self, row: dict[str, Any], alert: Any, config: Config) -> None:
        notification = Notification(
            id=row["id"],
            alert=row["alert"],
            subject=row["label"],
            kind=row["kind"],
            title="",
            body="",
            cause=row["cause"],
            pipeline=row["pipeline"],
            run_id=row["run_id"],
            at=row["at"],
            incident=row["incident"],
            description=row["description"],
        )
        redact = Redactor(config.secrets)
        what = f"alert {row['alert']!r}: {row['kind']} notification for {row['label']}"
        before = list(row.get("delivered") or [])
        try:
            accepted = await send(
                row["alert"],
                alert,
                notification,
                redact=redact,
                apprise_timeout=self.apprise_timeout,
                delivered=before,
            )
        except NotifyError as exc:
            delivered = [*before, *exc.delivered]
            attempts = row["attempts"] + 1
            retry_at = utcnow() + alert.delivery.wait(attempts)
            error = str(exc) + (f" (delivered to {', '.join(delivered)})" if delivered else "")
            if exc.retryable and retry_at <= row["deliver_by"]:
                logger.warning("{} not delivered (attempt {}), retrying: {}", what, attempts, exc)
                await self._settle(
                    row, "pending", error, next_attempt_at=retry_at, delivered=delivered
                )
            else:
                why = "gave up" if exc.retryable else "cannot be sent"
                logger.error("{} {} after {} attempt(s): {}", what, why, attempts, exc)
                await self._settle(row, "failed", error, delivered=delivered)
            return
        logger.info("{} sent", what)
        await self._settle(row, "sent", None, sent_at=utcnow(), delivered=[*before, *accepted])

    async def _muted_by(self, config: Config, row: dict[str, Any], now: datetime) -> str | None:
        """Why ``row`` is silenced now (a mute, a maintenance window), or None."""
        targets = {row["alert"], row["pipeline"]}
        for mute in await self.monitoring.mutes(now):
            if mute["target"] in targets:
                until = mute["until"].isoformat(timespec="seconds")
                return f"muted until {until}" + (f" ({mute['reason']})" if mute["reason"] else "")
        for name, window in config.maintenance.items():
            if window.covers(row["alert"], row["pipeline"]) and window.active(now):
                return f"maintenance window {name!r}"
        return None

    async def _settle(
        self, row: dict[str, Any], status: str, error: str | None, **values: Any
    ) -> None:
        await self.monitoring.settle(row["id"], status=status, last_error=error, **values)
