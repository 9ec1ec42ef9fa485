"""Alert notifications: what one notification says, and sending it to one alert's
destinations — Apprise URLs (mail, Slack, ntfy, … about a hundred services) and a
templated generic webhook.

The alert state machine and the outbox decide *when* to notify; this package only
delivers one ``Notification`` for one ``[alerts.NAME]`` table (``AlertConfig``) and says,
with a ``NotifyError``, whether trying again later can help. Apprise is imported on the
first send, not with this package.
"""

from podium.pipeline import NotifyError

from ._models import AlertConfig, WebhookSpec
from ._notification import FIELDS, KINDS, Kind, Notification, render_text
from ._notify import APPRISE_TIMEOUT, check_urls, send

__all__ = [
    "APPRISE_TIMEOUT",
    "FIELDS",
    "KINDS",
    "AlertConfig",
    "Kind",
    "Notification",
    "NotifyError",
    "WebhookSpec",
    "check_urls",
    "render_text",
    "send",
]
