"""Schedule slots: the fire times of a schedule between two instants.

The scheduler library only steps forward from now; the watchdog (fires that were due
and did not start) and backfill (one run per slot of a past range) need the slots of
any range. Interval schedules are anchored at their ``start`` when they have one; cron
schedules step in their time zone with croniter, as the scheduler does.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from croniter import croniter

from podium.pipeline import Schedule

# Counting further gains nothing (any threshold is met); it bounds the work after a
# long outage of a schedule that fires every second.
MAX_COUNTED = 1000


def overdue(schedule: Schedule, baseline: datetime, horizon: datetime) -> list[datetime]:
    """The fires of ``schedule`` in (baseline, horizon], the latest MAX_COUNTED of them."""
    end = schedule.end_at()
    if end is not None:
        horizon = min(horizon, end)
    if horizon <= baseline:
        return []
    if schedule.interval is not None:
        step, start = schedule.interval, schedule.start_at()
        if start is None:
            first = baseline + step
        elif start > baseline:
            first = start
        else:
            first = start + step * (math.floor((baseline - start) / step) + 1)
        if first > horizon:
            return []
        count = math.floor((horizon - first) / step) + 1
        skip = max(0, count - MAX_COUNTED)
        return [first + step * k for k in range(skip, count)]
    return cron_slots(schedule, baseline, horizon, MAX_COUNTED)


def slots_between(schedule: Schedule, start: datetime, end: datetime, limit: int) -> list[datetime]:
    """The fire times in [start, end): what a backfill of that range runs. More than
    ``limit`` raises ValueError (a range too large to have been meant)."""
    if schedule.interval is not None:
        step, anchor = schedule.interval, schedule.start_at() or start
        slot = anchor + step * max(0, math.ceil((start - anchor) / step))
        out: list[datetime] = []
        while slot < end:
            out.append(slot)
            if len(out) > limit:
                raise ValueError(f"more than {limit} slots")
            slot += step
        return out
    found = [s for s in cron_slots(schedule, start - timedelta(microseconds=1), end, limit + 1)
             if s < end]  # fmt: skip
    if len(found) > limit:
        raise ValueError(f"more than {limit} slots")
    return found


def cron_slots(schedule: Schedule, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """A cron schedule's fire times in (after, until], at most ``limit`` of them."""
    assert schedule.cron is not None
    start, end = schedule.start_at(), schedule.end_at()
    begin = max(after, start - timedelta(seconds=1)) if start else after
    if end is not None:
        until = min(until, end)
    itr = croniter(
        schedule.cron,
        begin.astimezone(schedule.zone),
        second_at_beginning=len(schedule.cron.split()) == 6,
    )
    out: list[datetime] = []
    while len(out) < limit:
        slot: datetime = itr.get_next(datetime)
        if slot > until:
            break
        out.append(slot.astimezone(UTC))
    return out


def next_slot(schedule: Schedule, now: datetime, last: datetime | None) -> datetime | None:
    """The schedule's next fire after ``now`` as far as the schedule alone tells (the
    status page, when no scheduler here knows it): a cron's next time; an interval's next
    step from its ``start``, or from the ``last`` fire recorded (the scheduler anchors an
    interval where it was first added, which only its data store knows)."""
    end = schedule.end_at()
    if schedule.interval is not None:
        step, anchor = schedule.interval, schedule.start_at() or last
        if anchor is None:
            return None
        slot = anchor + step * max(0, math.floor((now - anchor) / step) + 1)
    else:
        found = cron_slots(schedule, now, now + timedelta(days=400), 1)
        if not found:
            return None
        slot = found[0]
    return None if end is not None and slot > end else slot
