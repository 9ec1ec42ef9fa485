"""When a pipeline runs on its own: a pipeline's ``schedule``, as a pure model.

A schedule is part of what a pipeline is, so it is validated with the pipeline — by
``podium validate`` and by anyone building a ``Pipeline`` in Python — and a mistake
(an unknown key, a cron field out of range, a cron that never fires, an unknown zone) is
found when the config loads, not when a daemon first tries to fire it. Cron arithmetic is
croniter's; the daemon's scheduler library checks the expression once more when it
builds its trigger.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_SECONDS = 100 * 365 * 86400
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any) -> timedelta:
    """``30`` (seconds), ``"90s"``, ``"5m"``, ``"1h30m"``, ``"250ms"`` → timedelta."""
    if isinstance(value, timedelta):
        return value
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds is None:
        raise ValueError(f'not a duration: {value!r} (e.g. 30, "90s", "5m", "1h30m")')
    if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_SECONDS:
        raise ValueError(f"duration out of range: {value!r} (0 to 100 years)")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Schedule(BaseModel):
    """``schedule = { interval = "5m" }`` or ``{ cron = "0 * * * *", timezone = "…" }``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cron: str | None = None  # 5 fields, or 6 with seconds first
    interval: Duration | None = None
    timezone: str = "UTC"
    jitter: Duration = timedelta(0)
    start: datetime | None = None
    end: datetime | None = None
    paused: bool = False
    catch_up: Literal["skip", "once"] = "skip"
    overlap: Literal["skip", "queue", "parallel"] = "skip"
    # An interrupted run of a fire (its node died, or stopped before it finished) is
    # continued from its checkpoints by a surviving node ("auto"), or left ("never").
    resume: Literal["auto", "never"] = "auto"
    timeout: Duration | None = None  # the run's time budget; else the pipeline's, else default

    @model_validator(mode="after")
    def _check(self) -> Schedule:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of 'cron' or 'interval'")
        if self.interval is not None and self.interval <= timedelta(0):
            raise ValueError("'interval' must be positive")
        if self.cron is not None:
            check_cron(self.cron)
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f'unknown time zone {self.timezone!r} (e.g. "Europe/Berlin")'
            ) from None
        if self.start and self.end and _aware(self.start, zone) >= _aware(self.end, zone):
            raise ValueError("'start' must be before 'end'")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def start_at(self) -> datetime | None:
        return _aware(self.start, self.zone) if self.start else None

    def end_at(self) -> datetime | None:
        return _aware(self.end, self.zone) if self.end else None

    def describe(self) -> str:
        what = f"cron {self.cron} {self.timezone}" if self.cron else f"every {self.interval}"
        return what + (" (paused)" if self.paused else "")


def _aware(value: datetime, zone: ZoneInfo) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=zone)


def check_cron(expression: str) -> None:
    """ValueError unless ``expression`` is a cron that croniter accepts and that fires."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ValueError(f"'cron' needs 5 fields (or 6 with seconds first): {expression!r}")
    try:
        croniter(expression, second_at_beginning=len(fields) == 6).get_next(datetime)
    except CroniterBadCronError as exc:
        raise ValueError(f"cron {expression!r}: {_cron_problem(exc)}") from None
    except CroniterBadDateError:
        raise ValueError(f"cron {expression!r} never fires (no date matches it)") from None


def _cron_problem(exc: Exception) -> str:
    text = str(exc)
    return "a field is out of range" if "out of range" in text else text
