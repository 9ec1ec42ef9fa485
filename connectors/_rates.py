"""Rate budgets as config: how many requests a connector (or one host or path of it) may
send per second, minute or hour, and what happens when the API says its quota is used up.

Only the description lives here (pure data); the orchestrator's gateway keeps the
buckets, shared by every run of one process, and takes a slot per attempt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}  # fmt: skip
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` requests per ``period`` seconds."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period


def parse_rate(text: str) -> Rate:
    """``"10/s"``, ``"600/min"``, ``"5000/h"`` (also ``/second``, ``/minute``, ``/hour``,
    ``/d``); a ValueError that shows the valid form otherwise."""
    match = _RATE.fullmatch(text.lower())
    period = _PERIODS.get(match.group(2)) if match else None
    if match is None or period is None or float(match.group(1)) <= 0:
        raise ValueError(
            f"{text!r} is not a rate: write a positive count per period, "
            'e.g. "10/s", "600/min" or "5000/h"'
        )
    return Rate(float(match.group(1)), period)


class _RateFields(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rate: str
    # How many requests may go at once after an idle spell; 1 spaces every request evenly.
    burst: int = Field(default=1, ge=1, le=100_000)

    @field_validator("rate")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @property
    def parsed(self) -> Rate:
        return parse_rate(self.rate)


class RouteRate(_RateFields):
    """A budget for the requests to one host and/or path pattern (``/search/*``), on top
    of the connector's own ``rate``."""

    host: str | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _scoped(self) -> RouteRate:
        if self.host is None and self.path is None:
            raise ValueError("a [[rates]] entry needs a 'host' or a 'path' (else use 'rate')")
        return self

    def matches(self, url: str) -> bool:
        parts = urlsplit(url)
        if self.host is not None and not fnmatchcase((parts.hostname or "").lower(),
                                                     self.host.lower()):  # fmt: skip
            return False
        return self.path is None or fnmatchcase(parts.path or "/", self.path)


@dataclass(frozen=True, slots=True)
class RateSettings:
    """A connector's rate fields, gathered: the gateway reads only these.

    The API's rate-limit headers (``X-RateLimit-*``, ``RateLimit-*``, ``RateLimit``) hold
    the connector when they say nothing is left, until the reset (``headers``). A hold of
    at most ``max_wait`` seconds is waited out; a longer one means the quota is exhausted
    and the run stops cleanly (``partial``, cursors kept for the next run).
    ``on_quota = "stop"`` stops as soon as the headers say nothing is left.
    """

    rate: Rate | None = None
    burst: int = 1
    routes: tuple[RouteRate, ...] = ()
    headers: bool = True
    on_quota: Literal["wait", "stop"] = "wait"
    max_wait: float = 60.0

    @property
    def limits(self) -> bool:
        """Whether any slot is to be taken at all (else the gateway skips the budget)."""
        return self.rate is not None or bool(self.routes)
