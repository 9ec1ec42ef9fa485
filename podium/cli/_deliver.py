"""A command-line run's own alert notifications, delivered before the command exits.

The run queued them in its final transaction; here they are sent, with retries, for at
most ``DELIVER_WITHIN`` seconds. What is not delivered by then stays queued in the
journal: a daemon on the same database sends it later, and this says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from podium.orchestrator import Config, Database, RunResult

# Long enough to ride out a notifier's blip (two or three retries), short enough that a
# failed run's command does not hang on a destination that is down: a daemon keeps trying.
DELIVER_WITHIN = 5.0


async def deliver_own(config: Config, database: Database, result: RunResult) -> list[str]:
    """Send the run's notifications; one line for each that is not delivered."""
    if not result.notifications:
        return []
    from podium.orchestrator.engine import this_process
    from podium.orchestrator.notify import Dispatcher

    dispatcher = Dispatcher(database, lambda: config, node=this_process())
    left = await dispatcher.deliver(result.notifications, within=DELIVER_WITHIN)
    failed = [
        r for r in await dispatcher.monitoring.notifications(len(result.notifications) * 2 + 20)
        if r["id"] in result.notifications and r["status"] == "failed"
    ]  # fmt: skip
    lines = [
        f"alert {r['alert']!r}: the {r['kind']} notification for {r['label']} was not "
        f"delivered: {r['last_error']}"
        for r in failed
    ]
    lines += [
        f"alert {r['alert']!r}: the {r['kind']} notification for {r['label']} is not delivered "
        f"yet ({r['last_error'] or 'not sent'}); it stays queued for a daemon on this database"
        for r in left
    ]
    return lines
