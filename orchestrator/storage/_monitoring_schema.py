"""The journal's monitoring tables: incidents, the notification outbox, mutes, and
each check's state and hourly history.

``podium_alert_state``   one row per (alert, subject): open or not, consecutive counts,
                         the incident, when the next reminder is due
``podium_alert_outbox``  every notification a transition caused, and how its delivery
                         went (per destination: which accepted it); written in the
                         transaction that changed the state
``podium_alert_mutes``   ``podium alerts mute``: silenced until a time
``podium_check_status``  each check's latest result and since when it has held
``podium_check_hours``   per check and hour: runs, passes, response-time histogram —
                         what uptime and percentiles are computed from, kept long after
                         the raw results are pruned
``podium_run_hours``     per pipeline, node, hour and outcome: how many runs started in
                         that hour ended so — a pipeline's uptime of runs and a node's
                         work read a few hundred rows, not every run of a week
"""

from __future__ import annotations

import sqlalchemy as sa

from ._schema import metadata
from ._types import UTCDateTime

OUTBOX_STATUSES = ("pending", "held", "sent", "muted", "failed", "superseded")

alert_state_table = sa.Table(
    "podium_alert_state",
    metadata,
    sa.Column("alert", sa.String(200), primary_key=True),
    # "check:PIPELINE/CHECK" or "run:PIPELINE"
    sa.Column("subject", sa.String(420), primary_key=True),
    sa.Column("pipeline", sa.String(200), nullable=False),
    sa.Column("label", sa.String(420), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # ok | open
    sa.Column("failures", sa.Integer, nullable=False, default=0),
    sa.Column("successes", sa.Integer, nullable=False, default=0),
    sa.Column("incident", sa.String(32)),
    sa.Column("incidents", sa.Integer, nullable=False, default=0),
    sa.Column("opened_at", UTCDateTime()),
    sa.Column("resolved_at", UTCDateTime()),
    # How the last incident closed when not by passing: "removed" (gone from the config).
    sa.Column("closed_as", sa.String(16)),
    sa.Column("last_cause", sa.Text),
    sa.Column("last_run_id", sa.String(32)),
    sa.Column("last_outcome_at", UTCDateTime()),
    sa.Column("repeat_seconds", sa.Float),
    sa.Column("next_reminder_at", UTCDateTime()),
    # Run rules watching for missed fires: the latest fire already counted as missed.
    sa.Column("missed_slot", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_podium_alert_state_reminders", "status", "next_reminder_at"),
)

outbox_table = sa.Table(
    "podium_alert_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert", sa.String(200), nullable=False),
    sa.Column("subject", sa.String(420), nullable=False),
    sa.Column("label", sa.String(420), nullable=False),
    sa.Column("pipeline", sa.String(200)),
    sa.Column("kind", sa.String(16), nullable=False),  # down | reminder | resolved
    sa.Column("incident", sa.String(32)),
    sa.Column("cause", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("run_id", sa.String(32)),
    sa.Column("at", UTCDateTime(), nullable=False),  # when the state changed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("deliver_by", UTCDateTime(), nullable=False),
    # A dispatcher holds a row while it sends it; another may take it after claim_until.
    sa.Column("claimed_by", sa.String(160)),
    sa.Column("claim_until", UTCDateTime()),
    sa.Column("sent_at", UTCDateTime()),
    sa.Column("last_error", sa.Text),
    # The ids of the destinations that accepted it (``urls[0] mailto://user:****@host``:
    # index and masked form, no secret), so a retry sends only to the others.
    sa.Column("delivered", sa.JSON),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(
        "status IN (" + ", ".join(f"'{s}'" for s in OUTBOX_STATUSES) + ")",
        name="ck_podium_alert_outbox_status",
    ),
    sa.Index("ix_podium_alert_outbox_due", "status", "next_attempt_at"),
    sa.Index("ix_podium_alert_outbox_subject", "alert", "subject", "id"),
)

mutes_table = sa.Table(
    "podium_alert_mutes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # An alert's name, or a pipeline's (every alert about it).
    sa.Column("target", sa.String(200), nullable=False, index=True),
    sa.Column("until", UTCDateTime(), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("created_by", sa.String(200)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

check_status_table = sa.Table(
    "podium_check_status",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("since", UTCDateTime(), nullable=False),  # since when ``ok`` has held
    sa.Column("last_at", UTCDateTime(), nullable=False),
    sa.Column("last_run_id", sa.String(32), nullable=False),
    sa.Column("last_success_at", UTCDateTime()),
    sa.Column("last_failure_at", UTCDateTime()),
    sa.Column("last_failure_run_id", sa.String(32)),
    sa.Column("last_failure_cause", sa.Text),
)

check_hours_table = sa.Table(
    "podium_check_hours",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("hour", UTCDateTime(), primary_key=True),  # the hour's start, UTC
    sa.Column("runs", sa.Integer, nullable=False, default=0),
    sa.Column("passed", sa.Integer, nullable=False, default=0),
    sa.Column("latency", sa.JSON),  # counts per bucket of alerts.latency
)

run_hours_table = sa.Table(
    "podium_run_hours",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("node", sa.String(160), primary_key=True),  # "" for a run without one
    sa.Column("hour", UTCDateTime(), primary_key=True),  # the hour the runs started in, UTC
    sa.Column("status", sa.String(16), primary_key=True),  # how they ended
    sa.Column("runs", sa.Integer, nullable=False, default=0),
    sa.Index("ix_podium_run_hours_hour", "hour"),
)

MONITORING_TABLES = [
    alert_state_table,
    outbox_table,
    mutes_table,
    check_status_table,
    check_hours_table,
    run_hours_table,
]
