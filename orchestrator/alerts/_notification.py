"""One notification: what happened, to what, when — and the text people read about it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

Kind = Literal["down", "reminder", "resolved", "test"]
KINDS: frozenset[str] = frozenset(get_args(Kind))

# The names a webhook body template may use, in the order of the default body.
FIELDS: tuple[str, ...] = (
    "id",
    "alert",
    "subject",
    "kind",
    "title",
    "body",
    "cause",
    "pipeline",
    "run_id",
    "at",
    "incident",
    "description",
)

_LABEL = {"down": "DOWN", "reminder": "STILL DOWN", "resolved": "RESOLVED", "test": "TEST"}


@dataclass(frozen=True)
class Notification:
    """One message for one alert, as the outbox hands it to the senders.

    ``id`` is the outbox id: the same notification sent twice has the same id, and the
    webhook passes it on as an idempotency key. ``subject`` names what the alert is about
    (``"check demo/plausible"``, ``"run demo"``). ``title`` and ``body`` are the text to
    send; leave either empty and the senders use ``render_text`` for it. ``at`` is when
    the state changed, timezone-aware.
    """

    id: int | str
    alert: str
    subject: str
    kind: Kind
    title: str
    body: str
    cause: str | None
    pipeline: str | None
    run_id: str | None
    at: datetime
    incident: str | None
    # What the alert or its attachment says about itself ("checkout API for the shop").
    description: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"notification kind {self.kind!r} is not one of {sorted(KINDS)}")
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(f"notification time {self.at.isoformat()} has no timezone")

    def text(self) -> tuple[str, str]:
        """The title and body to send: the notification's own, else ``render_text``'s."""
        if self.title and self.body:
            return self.title, self.body
        title, body = render_text(self)
        return self.title or title, self.body or body

    def values(self) -> dict[str, Any]:
        """What a webhook body template's ``{name}`` holes read (see ``FIELDS``)."""
        title, body = self.text()
        return {
            "id": self.id,
            "alert": self.alert,
            "subject": self.subject,
            "kind": self.kind,
            "title": title,
            "body": body,
            "cause": self.cause,
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "at": self.at.astimezone(UTC).isoformat(),
            "incident": self.incident,
            "description": self.description,
        }


def utc_text(at: datetime) -> str:
    """``2025-06-01 12:00:00 UTC``: one zone for every reader, and it says which."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_text(n: Notification) -> tuple[str, str]:
    """The human message for ``n``, from its fields (its own ``title``/``body`` unused).

    The title leads with the state, so a mail filter or a phone's lock screen shows it
    first: ``DOWN: check demo/plausible``. The body says what happened in a sentence, then
    one line per known fact — cause, pipeline, run, incident, alert — and the time in UTC.
    """
    title = f"{_LABEL[n.kind]}: {n.subject}"
    if n.kind == "down":
        lead = f"{n.subject} is failing."
    elif n.kind == "reminder":
        lead = f"{n.subject} is still failing."
    elif n.kind == "resolved":
        lead = f"{n.subject} has recovered."
    else:
        lead = f"A test notification from podium for alert {n.alert!r}."
    facts = [
        ("Cause", n.cause),
        ("Pipeline", n.pipeline),
        ("Run", n.run_id),
        ("Incident", n.incident),
        ("Alert", n.alert),
        ("Time", utc_text(n.at)),
    ]
    if n.description:
        lead = f"{lead}\n{n.description}"
    lines = [lead, "", *(f"{name}: {value}" for name, value in facts if value)]
    return title, "\n".join(lines)
