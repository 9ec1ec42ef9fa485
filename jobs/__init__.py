"""The scheduler daemon: fires pipelines on their schedules, alone or with other nodes.

Layering: jobs → orchestrator → connectors → pipeline. APScheduler (pinned 4.0.0a6) is
imported by ``jobs._adapter`` only. Names load on first use (PEP 562), so ``podium
validate`` can check a plan without starting up the daemon's machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "call_daemon": "_control",
    "config_token": "_control",
    "follow_progress": "_control",
    "fetch_statuses": "_control",
    "live_daemons": "_control",
    "reload_daemons": "_control",
    "request_reload": "_control",
    "Daemon": "_daemon",
    "run_daemon": "_daemon",
    "Plan": "_models",
    "SchedulerSettings": "_models",
    "build_plan": "_models",
    "check_alerts": "_models",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    part = _EXPORTS.get(name)
    if part is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{part}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from ._control import call_daemon as call_daemon
    from ._control import config_token as config_token
    from ._control import fetch_statuses as fetch_statuses
    from ._control import follow_progress as follow_progress
    from ._control import live_daemons as live_daemons
    from ._control import reload_daemons as reload_daemons
    from ._control import request_reload as request_reload
    from ._daemon import Daemon as Daemon
    from ._daemon import run_daemon as run_daemon
    from ._models import Plan as Plan
    from ._models import SchedulerSettings as SchedulerSettings
    from ._models import build_plan as build_plan
    from ._models import check_alerts as check_alerts
