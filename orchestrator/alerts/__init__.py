"""Alerts, the pure part: what an ``[alerts.NAME]`` table says, what one notification
says, which rules attach alerts to checks and runs, and the state machine that turns
outcomes into incidents (thresholds, resolve, reminders) and maintenance windows.

No I/O here, and nothing above the config loader: ``config`` validates into these, the
journal (``storage``) applies the transitions inside a run's final transaction, and
``notify`` delivers what the outbox holds.
"""

from . import _latency as latency
from ._maintenance import MaintenanceWindow
from ._models import AlertConfig, Delivery, WebhookSpec
from ._notification import FIELDS, KINDS, Kind, Notification, render_text
from ._rules import AlertRule, check_subject, rules_for, run_subject
from ._transitions import AlertState, Outcome, Transition, advance, new_incident, remind
from ._uptime import WINDOWS, CheckSummary, summarise, window_start

__all__ = [
    "FIELDS",
    "KINDS",
    "WINDOWS",
    "AlertConfig",
    "AlertRule",
    "AlertState",
    "CheckSummary",
    "Delivery",
    "Kind",
    "MaintenanceWindow",
    "Notification",
    "Outcome",
    "Transition",
    "WebhookSpec",
    "advance",
    "check_subject",
    "latency",
    "new_incident",
    "remind",
    "render_text",
    "rules_for",
    "run_subject",
    "summarise",
    "window_start",
]
