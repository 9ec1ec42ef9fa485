"""Maintenance windows: ``[maintenance.NAME]`` tables that silence notifications.

A window is recurring (``cron`` is when it begins, ``duration`` how long it lasts, in
its ``timezone``) or one-off (``start`` and ``end``). It silences the alerts it names,
or the notifications about the pipelines it names, or — naming neither — every alert.
A silenced notification is still recorded in the outbox, as muted; see the dispatcher
for what happens to an incident that is still open when the window closes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from podium.pipeline import Duration, check_cron


class MaintenanceWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cron: str | None = None
    duration: Duration | None = None
    timezone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    alerts: list[str] = Field(default_factory=list)
    pipelines: list[str] = Field(default_factory=list)
    description: str = ""

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            check_cron(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceWindow:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = self.timezone
            raise ValueError(f'unknown time zone {zone!r} (e.g. "Europe/Berlin")') from None
        recurring = self.cron is not None or self.duration is not None
        one_off = self.start is not None or self.end is not None
        if recurring == one_off:
            raise ValueError(
                "give either cron and duration (a recurring window) or start and end "
                "(a one-off window)"
            )
        if recurring and (self.cron is None or self.duration is None):
            raise ValueError("a recurring window needs both cron and duration")
        if self.duration is not None and self.duration <= timedelta(0):
            raise ValueError("duration must be positive")
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs both start and end")
            if self._aware(self.start) >= self._aware(self.end):
                raise ValueError("'start' must be before 'end'")
        return self

    def _aware(self, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(self.timezone))

    def active(self, now: datetime) -> bool:
        """Whether the window is open at ``now`` (timezone-aware)."""
        if self.start is not None and self.end is not None:
            return self._aware(self.start) <= now < self._aware(self.end)
        assert self.cron is not None and self.duration is not None
        zone = ZoneInfo(self.timezone)
        # The latest beginning at or before now; croniter steps in the window's zone, so
        # "0 2 * * *" is 02:00 local on both sides of a DST change.
        base = (now + timedelta(seconds=1)).astimezone(zone)
        began: datetime = croniter(
            self.cron, base, second_at_beginning=len(self.cron.split()) == 6
        ).get_prev(datetime)
        return began.astimezone(UTC) <= now < began.astimezone(UTC) + self.duration

    def covers(self, alert: str, pipeline: str | None) -> bool:
        """Whether the window silences a notification of ``alert`` about ``pipeline``."""
        if not self.alerts and not self.pipelines:
            return True
        return alert in self.alerts or (pipeline is not None and pipeline in self.pipelines)
