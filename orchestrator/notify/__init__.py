"""Delivering alert notifications: sending one to an alert's destinations (Apprise URLs
and a templated webhook), and the dispatcher that drains the outbox the runs fill.

Above ``storage`` (the dispatcher claims outbox rows) and beside ``engine``, which never
waits on a notifier: a run only writes outbox rows in its final transaction. Names load
on first use, so checking URLs (``podium validate``) does not import the database layer;
Apprise itself is imported on the first send or check.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "APPRISE_TIMEOUT": "_send",
    "check_urls": "_send",
    "destinations": "_send",
    "send": "_send",
    "Dispatcher": "_dispatcher",
}
__all__ = ["NotifyError", *sorted(_EXPORTS)]

from podium.pipeline import NotifyError  # noqa: E402


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from ._dispatcher import Dispatcher as Dispatcher
    from ._send import APPRISE_TIMEOUT as APPRISE_TIMEOUT
    from ._send import check_urls as check_urls
    from ._send import destinations as destinations
    from ._send import send as send
