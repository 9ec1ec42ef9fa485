"""Delivering alert notifications: sending one to an alert's destinations (Apprise URLs
and a templated webhook), and the dispatcher that drains the outbox the runs fill.

Above ``storage`` (the dispatcher claims outbox rows) and beside ``engine``, which never
waits on a notifier: a run only writes outbox rows in its final transaction. Apprise is
imported on the first send, not with this package.
"""

from podium.pipeline import NotifyError

from ._dispatcher import Dispatcher
from ._send import APPRISE_TIMEOUT, check_urls, destinations, send

__all__ = ["APPRISE_TIMEOUT", "Dispatcher", "NotifyError", "check_urls", "destinations", "send"]
