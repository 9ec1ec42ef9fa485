"""The scheduler daemon: fires pipelines on their schedules, alone or with other nodes.

Layering: jobs → orchestrator → connectors → pipeline. APScheduler (pinned 4.0.0a6) is
imported by ``jobs._adapter`` only.
"""

from podium.pipeline import NodeIdInUse

from ._control import fetch_statuses, live_daemons, reload_daemons, request_reload
from ._daemon import Daemon, run_daemon
from ._models import Plan, Schedule, SchedulerSettings, build_plan, parse_duration

__all__ = [
    "Daemon",
    "NodeIdInUse",
    "Plan",
    "Schedule",
    "SchedulerSettings",
    "build_plan",
    "fetch_statuses",
    "live_daemons",
    "parse_duration",
    "reload_daemons",
    "request_reload",
    "run_daemon",
]
