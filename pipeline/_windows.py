"""Date windows for incremental fetches: the time ranges one run asks for.

``window = { start = "30d", step = "1d", lookback = "2h" }`` on an incremental fetch
splits the time since its mark (or since ``start`` on the first run) into windows of
``step``, one request each, their bounds sent as ``start_param``/``end_param`` in the
``format`` the API reads. ``lookback`` starts each later run that much before the mark,
for records that arrive late. Pure: the engine asks for ``windows(mark, now)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._errors import PipelineError
from ._schedule import Duration, parse_duration

# Windows one run may ask for: more is a step too small for the range, not a plan.
MAX_WINDOWS = 10_000


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # The first run's beginning: a time, or a duration back from now ("30d").
    start: datetime | Duration
    # The end of every run's range: "now" (the default), or a fixed time.
    end: datetime | None = None
    step: Duration
    lookback: Duration = timedelta(0)
    start_param: str = Field(default="start", min_length=1)
    end_param: str = Field(default="end", min_length=1)
    # "iso" (2026-12-01T00:00:00Z), "date" (2026-12-01), "epoch", "epoch_ms", or a strftime
    # pattern ("%Y%m%d").
    format: str = "iso"

    @field_validator("start", mode="before")
    @classmethod
    def _time_or_duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return parse_duration(value)
        return value

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in ("iso", "date", "epoch", "epoch_ms") and "%" not in value:
            raise ValueError(
                f"format {value!r}: iso, date, epoch, epoch_ms, or a strftime pattern such "
                'as "%Y-%m-%d"'
            )
        return value

    @model_validator(mode="after")
    def _positive(self) -> Window:
        if self.step <= timedelta(0):
            raise ValueError("step must be a positive duration, e.g. 1d")
        if self.lookback < timedelta(0):
            raise ValueError("lookback cannot be negative")
        # A first run's range of more windows than a run may ask for is a step too small:
        # said at load, not when the run starts (a fixed start is judged as of today).
        now = datetime.now(UTC)
        if (self.range_end(now) - self.first_start(now)) / self.step > MAX_WINDOWS:
            raise ValueError(self._too_many())
        return self

    def _too_many(self) -> str:
        return (
            f"more than {MAX_WINDOWS:,} windows of {self.step} in one run: a larger step, "
            "or a later start"
        )

    def first_start(self, now: datetime) -> datetime:
        if isinstance(self.start, timedelta):
            return now - self.start
        return _aware(self.start)

    def range_end(self, now: datetime) -> datetime:
        return _aware(self.end) if self.end is not None else now

    def windows(self, mark: datetime | None, now: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The [begin, end) windows a run asks for, from ``mark`` (None: the first run)."""
        begin = self.first_start(now) if mark is None else mark - self.lookback
        end = self.range_end(now)
        count = 0
        while begin < end:
            stop = min(begin + self.step, end)
            yield begin, stop
            begin = stop
            count += 1
            if count > MAX_WINDOWS:  # a mark set far back (podium state set)
                raise PipelineError(self._too_many())

    def render(self, when: datetime) -> str | int:
        when = when.astimezone(UTC)
        if self.format == "iso":
            return when.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.format == "date":
            return when.strftime("%Y-%m-%d")
        if self.format == "epoch":
            return int(when.timestamp())
        if self.format == "epoch_ms":
            return int(when.timestamp() * 1000)
        return when.strftime(self.format)


def parse_mark(value: Any) -> datetime | None:
    """A window mark as stored (ISO text), back as a time."""
    if not isinstance(value, str):
        return None
    try:
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
