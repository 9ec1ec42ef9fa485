"""The alert tables' SQL: apply outcomes to incident states, queue and claim
notifications, mutes.

Every function takes the transaction's ``Connection`` first (see ``Database.run``).
A state row is read ``FOR UPDATE`` (PostgreSQL; SQLite has one writer anyway), changed
by the pure state machine (``alerts.advance``), and written back with the outbox rows
the change caused, in the caller's transaction — a run's final one, or a watchdog's.
So a transition is recorded exactly once however many nodes apply outcomes, and a
crash either loses both the state change and its notification or neither.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from ..alerts import AlertRule, AlertState, Outcome, Transition, advance, remind
from ._monitoring_schema import alert_state_table, mutes_table, outbox_table
from ._schema import as_dict

STATE = alert_state_table
OUTBOX = outbox_table
_STATE_FIELDS = tuple(AlertState.__dataclass_fields__)


def apply_outcomes(
    conn: Connection, outcomes: Iterable[tuple[AlertRule, Outcome]], now: datetime
) -> list[int]:
    """Apply each outcome to its rule's state; the ids of the notifications queued."""
    queued: list[int] = []
    for rule, outcome in outcomes:
        row = _locked_state(conn, rule, now)
        if outcome.run_id is not None and row["last_run_id"] == outcome.run_id:
            continue  # this run's outcome is in already
        state = _state(row)
        transitions = advance(state, outcome, rule)
        values = {name: getattr(state, name) for name in _STATE_FIELDS}
        values |= {"last_run_id": outcome.run_id, "last_outcome_at": outcome.at}
        _write_state(conn, rule, values, now)
        queued += _queue(conn, rule, transitions, outcome.run_id, outcome.at, now)
    return queued


def record_missed(
    conn: Connection, rule: AlertRule, slots: list[datetime], cause: str, now: datetime
) -> list[int] | None:
    """Count the missed fires ``slots`` as failures — each once, however many nodes look:
    the slots past the latest one counted are decided under the state's lock. None when
    none is new. ``cause`` may use ``{count}`` and ``{latest}``."""
    row = _locked_state(conn, rule, now)
    counted = row["missed_slot"]
    fresh = [s for s in slots if counted is None or s > counted]
    if not fresh:
        return None
    slot, count = fresh[-1], len(fresh)
    text = cause.format(
        count=count,
        fires="scheduled fires" if count > 1 else "scheduled fire",
        latest=slot.isoformat(timespec="seconds"),
    )
    state = _state(row)
    outcome = Outcome(ok=False, at=now, cause=text, count=count)
    transitions = advance(state, outcome, rule)
    values = {name: getattr(state, name) for name in _STATE_FIELDS}
    values |= {"missed_slot": slot, "last_outcome_at": now}
    _write_state(conn, rule, values, now)
    return _queue(conn, rule, transitions, None, now, now)


def watched_since(conn: Connection, rules: Iterable[AlertRule]) -> dict[str, datetime]:
    """For each rule's subject: since when it has been watched for missed fires — the
    latest fire already counted as missed, else when its state was created."""
    out: dict[str, datetime] = {}
    for rule in rules:
        row = conn.execute(
            select(STATE.c.missed_slot, STATE.c.created_at).where(
                (STATE.c.alert == rule.alert) & (STATE.c.subject == rule.subject)
            )
        ).first()
        if row is not None:
            out[f"{rule.alert}\0{rule.subject}"] = row[0] or row[1]
    return out


def watch(conn: Connection, rules: Iterable[AlertRule], now: datetime) -> None:
    """Create the state rows of ``rules`` that have none: a missed-fire watch counts
    from the moment it was first seen, not from the beginning of time."""
    for rule in rules:
        _locked_state(conn, rule, now)


def queue_reminders(
    conn: Connection, rules: dict[tuple[str, str], AlertRule], now: datetime
) -> list[int]:
    """Queue the reminders due at ``now`` for open incidents of current rules."""
    due = (STATE.c.status == "open") & (STATE.c.next_reminder_at <= now)
    query = select(STATE).where(due).with_for_update(skip_locked=True)
    queued: list[int] = []
    for found in conn.execute(query).all():
        row = as_dict(found)
        rule = rules.get((row["alert"], row["subject"]))
        if rule is None:
            continue  # the attachment is gone from the config: no reminders for it
        state = _state(row)
        transition = remind(state, now)
        if transition is None:
            continue
        same = (STATE.c.alert == row["alert"]) & (STATE.c.subject == row["subject"])
        same &= STATE.c.next_reminder_at == row["next_reminder_at"]
        moved = update(STATE).where(same).values(next_reminder_at=state.next_reminder_at)
        if conn.execute(moved).rowcount:
            queued += _queue(conn, rule, [transition], row["last_run_id"], now, now)
    return queued


def close_removed(
    conn: Connection, current: set[tuple[str, str]], now: datetime
) -> list[dict[str, Any]]:
    """Close the open incidents whose (alert, subject) is not in ``current`` — the
    monitor, check or pipeline, or its alert, is gone from the config, so nothing will
    ever resolve them — as ``removed``, without a notification (nothing recovered). Their
    undelivered notifications are superseded. The closed states, as they were.

    Each state is closed by one conditional update — only if still open with the same
    incident — that takes its row lock, so a node applying an outcome at this moment (or
    another node closing it too) is safe. The open states are read without locking: the
    ones still watched are none of this function's business, and are not held up.
    """
    query = select(STATE).where(STATE.c.status == "open").order_by(STATE.c.alert, STATE.c.subject)
    closed: list[dict[str, Any]] = []
    for found in conn.execute(query).all():
        row = dict(found._mapping)
        key = (row["alert"], row["subject"])
        if key in current:
            continue
        same = (STATE.c.alert == key[0]) & (STATE.c.subject == key[1])
        same &= (STATE.c.status == "open") & (STATE.c.incident == row["incident"])
        values = {
            "status": "ok",
            "closed_as": "removed",
            "failures": 0,
            "successes": 0,
            "resolved_at": now,
            "next_reminder_at": None,
            "updated_at": now,
        }
        if not conn.execute(update(STATE).where(same).values(**values)).rowcount:
            continue
        waiting = (OUTBOX.c.alert == key[0]) & (OUTBOX.c.subject == key[1])
        waiting &= (OUTBOX.c.incident == row["incident"]) & OUTBOX.c.status.in_(("pending", "held"))
        why = "its incident was closed: the subject is no longer in the config"
        conn.execute(update(OUTBOX).where(waiting).values(status="superseded", last_error=why))
        closed.append(row)
    return closed


def _locked_state(conn: Connection, rule: AlertRule, now: datetime) -> dict[str, Any]:
    key = (STATE.c.alert == rule.alert) & (STATE.c.subject == rule.subject)
    query = select(STATE).where(key).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        try:
            with conn.begin_nested():  # another node may create it this very moment
                conn.execute(
                    STATE.insert().values(
                        alert=rule.alert,
                        subject=rule.subject,
                        pipeline=rule.pipeline,
                        label=rule.label,
                        status="ok",
                        failures=0,
                        successes=0,
                        incidents=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            pass
        row = conn.execute(query).one()
    return as_dict(row)


def _state(row: dict[str, Any]) -> AlertState:
    return AlertState(**{name: row[name] for name in _STATE_FIELDS})


def _write_state(conn: Connection, rule: AlertRule, values: dict[str, Any], now: datetime) -> None:
    key = (STATE.c.alert == rule.alert) & (STATE.c.subject == rule.subject)
    values |= {"label": rule.label, "pipeline": rule.pipeline, "updated_at": now}
    if values.get("status") == "open":
        values["closed_as"] = None  # a new incident (or one still open) is not closed
    conn.execute(update(STATE).where(key).values(**values))


def _queue(
    conn: Connection,
    rule: AlertRule,
    transitions: list[Transition],
    run_id: str | None,
    at: datetime,
    now: datetime,
) -> list[int]:
    ids = []
    for t in transitions:
        if t.kind == "resolved":
            # A "down" held by a mute is decided now (muted for good), not at its re-check.
            held = (OUTBOX.c.alert == rule.alert) & (OUTBOX.c.subject == rule.subject)
            held &= (OUTBOX.c.incident == t.incident) & (OUTBOX.c.status == "held")
            conn.execute(update(OUTBOX).where(held).values(next_attempt_at=now))
        result = conn.execute(
            OUTBOX.insert()
            .values(
                alert=rule.alert,
                subject=rule.subject,
                label=rule.label,
                pipeline=rule.pipeline,
                kind=t.kind,
                incident=t.incident,
                cause=t.cause,
                description=rule.description or None,
                run_id=run_id,
                at=at,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                deliver_by=now + rule.give_up_after,
                created_at=now,
            )
            .returning(OUTBOX.c.id)
        )
        ids.append(int(result.scalar_one()))
    return ids


# -- the outbox --------------------------------------------------------------------------
def next_notifications(
    conn: Connection, now: datetime, limit: int, ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """Notifications ready to be looked at: pending or held, due, unclaimed, and each
    the earliest unfinished one of its (alert, subject) — so "resolved" never overtakes
    the "down" it resolves, whatever happened to the delivery of that one. With ``ids``:
    those, and whatever stands before them in their (alert, subject)."""
    earlier = OUTBOX.alias("earlier")
    blocked = (
        select(earlier.c.id)
        .where(
            (earlier.c.alert == OUTBOX.c.alert)
            & (earlier.c.subject == OUTBOX.c.subject)
            & (earlier.c.id < OUTBOX.c.id)
            & earlier.c.status.in_(("pending", "held"))
        )
        .exists()
    )
    ready = OUTBOX.c.status.in_(("pending", "held")) & (OUTBOX.c.next_attempt_at <= now)
    ready &= OUTBOX.c.claim_until.is_(None) | (OUTBOX.c.claim_until < now)
    if ids is not None:
        pairs = select(OUTBOX.c.alert, OUTBOX.c.subject).where(OUTBOX.c.id.in_(ids))
        ready &= sa.tuple_(OUTBOX.c.alert, OUTBOX.c.subject).in_(pairs)
    query = select(OUTBOX).where(ready & ~blocked).order_by(OUTBOX.c.id).limit(limit)
    return [as_dict(r) for r in conn.execute(query)]


def claim_notification(
    conn: Connection, row: dict[str, Any], node: str, now: datetime, hold: timedelta
) -> bool:
    """Take ``row`` for sending until ``now + hold``; False when another node has it."""
    free = (OUTBOX.c.id == row["id"]) & (OUTBOX.c.status == row["status"])
    free &= OUTBOX.c.claim_until.is_(None) | (OUTBOX.c.claim_until < now)
    values = {"claimed_by": node, "claim_until": now + hold, "attempts": OUTBOX.c.attempts + 1}
    return bool(conn.execute(update(OUTBOX).where(free).values(**values)).rowcount)


def release_claims(conn: Connection, node: str) -> int:
    """A restarted node's claims from before: free at once, not when they expire."""
    mine = (OUTBOX.c.claimed_by == node) & OUTBOX.c.status.in_(("pending", "held"))
    mine &= OUTBOX.c.claim_until.is_not(None)
    return int(conn.execute(update(OUTBOX).where(mine).values(claim_until=None)).rowcount)


def settle_notification(conn: Connection, notification_id: int, values: dict[str, Any]) -> None:
    """Record what became of a claimed notification, releasing the claim."""
    values = {"claim_until": None, **values}
    conn.execute(update(OUTBOX).where(OUTBOX.c.id == notification_id).values(**values))


def incident_status(conn: Connection, alert: str, subject: str) -> tuple[str | None, str | None]:
    """(status, incident) of a rule's state now."""
    row = conn.execute(
        select(STATE.c.status, STATE.c.incident).where(
            (STATE.c.alert == alert) & (STATE.c.subject == subject)
        )
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


def down_status(conn: Connection, alert: str, subject: str, incident: str) -> str | None:
    """What became of the "down" notification of ``incident``."""
    query = select(OUTBOX.c.status).where(
        (OUTBOX.c.alert == alert)
        & (OUTBOX.c.subject == subject)
        & (OUTBOX.c.incident == incident)
        & (OUTBOX.c.kind == "down")
    )
    value: str | None = conn.execute(query.limit(1)).scalar()
    return value


def select_notifications(
    conn: Connection, limit: int, statuses: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    query = select(OUTBOX).order_by(OUTBOX.c.id.desc()).limit(limit)
    if statuses:
        query = query.where(OUTBOX.c.status.in_(statuses))
    return [as_dict(r) for r in conn.execute(query)]


def select_states(conn: Connection, open_only: bool) -> list[dict[str, Any]]:
    query = select(STATE).order_by(STATE.c.alert, STATE.c.subject)
    if open_only:
        query = query.where(STATE.c.status == "open")
    return [as_dict(r) for r in conn.execute(query)]


def outbox_counts(conn: Connection) -> dict[str, int]:
    query = select(OUTBOX.c.status, sa.func.count()).group_by(OUTBOX.c.status)
    return {status: int(n) for status, n in conn.execute(query)}


# -- mutes -------------------------------------------------------------------------------
def add_mute(conn: Connection, values: dict[str, Any]) -> int:
    result = conn.execute(mutes_table.insert().values(**values).returning(mutes_table.c.id))
    return int(result.scalar_one())


def remove_mutes(conn: Connection, target: str, now: datetime) -> int:
    """End every mute of ``target`` now; how many were active."""
    active = (mutes_table.c.target == target) & (mutes_table.c.until > now)
    ended = conn.execute(update(mutes_table).where(active).values(until=now)).rowcount
    # What the mute held is looked at again now, not at its next re-check.
    held = (OUTBOX.c.status == "held") & (
        (OUTBOX.c.alert == target) | (OUTBOX.c.pipeline == target)
    )
    conn.execute(update(OUTBOX).where(held).values(next_attempt_at=now))
    return int(ended)


def active_mutes(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    query = select(mutes_table).where(mutes_table.c.until > now).order_by(mutes_table.c.until)
    return [as_dict(r) for r in conn.execute(query)]


def prune_outbox(conn: Connection, before: datetime) -> int:
    done = OUTBOX.c.status.in_(("sent", "muted", "failed", "superseded"))
    return int(conn.execute(delete(OUTBOX).where(done & (OUTBOX.c.created_at < before))).rowcount)
