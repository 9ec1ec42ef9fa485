"""The incident state machine of one (alert, subject): outcomes in, notifications out.

Gatus's model, kept in the journal instead of memory: ``failure_threshold`` consecutive
failures open an incident ("down"); while it is open, ``success_threshold`` consecutive
passes resolve it ("resolved", unless ``send_on_resolved`` is off). A pass breaks a
run of failures and a failure breaks a run of passes. Reminders ("still down") are due
every ``repeat`` while the incident stays open; the dispatcher sends them when due, so
they come on time even for a check that runs once a day.

Pure: the journal reads the state row under a lock, calls ``advance`` and writes the
state and the notifications back in the same transaction — so a crash loses neither,
and two nodes finishing runs of one monitor at once apply their outcomes one after
the other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ._notification import Kind
from ._rules import AlertRule

Status = Literal["ok", "open"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One observation of a rule's subject: a check's result in a run, a run's ending,
    or fires that did not happen (``count`` of them, each a failure)."""

    ok: bool
    at: datetime
    cause: str | None = None
    run_id: str | None = None
    count: int = 1


@dataclass(slots=True)
class AlertState:
    status: Status = "ok"
    failures: int = 0  # consecutive, up to the latest outcome
    successes: int = 0
    incident: str | None = None  # the open incident's id, or the last one's
    incidents: int = 0
    opened_at: datetime | None = None
    resolved_at: datetime | None = None
    last_cause: str | None = None
    next_reminder_at: datetime | None = None
    repeat_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    kind: Kind
    incident: str
    cause: str | None


def advance(state: AlertState, outcome: Outcome, rule: AlertRule) -> list[Transition]:
    """Apply ``outcome`` to ``state`` (in place); the notifications it causes."""
    _follow_repeat(state, rule, outcome.at)
    if outcome.ok:
        state.failures = 0
        state.successes += 1
        if state.status == "open" and state.successes >= rule.success_threshold:
            incident = state.incident or new_incident()
            cause = state.last_cause
            state.status, state.resolved_at, state.next_reminder_at = "ok", outcome.at, None
            return [Transition("resolved", incident, cause)] if rule.send_on_resolved else []
        return []
    state.successes = 0
    state.failures += outcome.count
    state.last_cause = outcome.cause
    if state.status == "ok" and state.failures >= rule.failure_threshold:
        state.status = "open"
        state.incident = new_incident()
        state.incidents += 1
        state.opened_at, state.resolved_at = outcome.at, None
        state.next_reminder_at = _after(outcome.at, state.repeat_seconds)
        return [Transition("down", state.incident, outcome.cause)]
    return []


def remind(state: AlertState, now: datetime) -> Transition | None:
    """The reminder due at ``now`` for an open incident, moving the next one on; None
    when none is due. Reminders missed while no daemon ran collapse into one."""
    due = state.next_reminder_at
    if state.status != "open" or due is None or state.repeat_seconds is None or due > now:
        return None
    step = timedelta(seconds=state.repeat_seconds)
    behind = (now - due) // step + 1
    state.next_reminder_at = due + step * behind
    return Transition("reminder", state.incident or new_incident(), state.last_cause)


def new_incident() -> str:
    return uuid.uuid4().hex[:12]


def _follow_repeat(state: AlertState, rule: AlertRule, at: datetime) -> None:
    """A changed ``repeat`` applies to an incident already open, from now."""
    seconds = rule.repeat.total_seconds() if rule.repeat is not None else None
    if seconds == state.repeat_seconds:
        return
    state.repeat_seconds = seconds
    if state.status == "open":
        state.next_reminder_at = _after(at, seconds)


def _after(at: datetime, seconds: float | None) -> datetime | None:
    return at + timedelta(seconds=seconds) if seconds is not None else None
