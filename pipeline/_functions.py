"""The functions podium adds to expressions: text, numbers and dates.

One table serves both expression forms: JMESPath (as custom functions, through
jmespath's own ``Functions`` extension point, with its type-checked signatures) and
``expr:`` formulas. In JMESPath every value is JSON, so a date is ISO-8601 text
(``2026-12-02T10:00:00Z``) and a duration is text (``"2h"``, ``"-30m"``); in a formula
``now()``, ``date(...)`` and ``duration(...)`` are real times and time spans, so
``now() - duration('2h')`` is arithmetic, and the formula's result goes back to JSON
(a time as ISO text, a span as seconds).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

from jmespath import functions

from ._schedule import parse_duration

_F = TypeVar("_F", bound=Callable[..., Any])
# jmespath's decorator, typed (the package ships no annotations).
signature: Callable[..., Callable[[_F], _F]] = functions.signature

FUNCTION_NAMES = (
    "now", "date", "date_add", "duration", "epoch", "format_date",
    "lower", "upper", "concat", "to_number", "to_string", "round", "abs",
    "length", "min", "max", "coalesce",
)  # fmt: skip


def iso(when: datetime) -> str:
    """A time as podium writes it: UTC, ``Z``, fractions of a second only when there are."""
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    if when.microsecond:
        return when.isoformat().replace("+00:00", "Z")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> datetime:
    return datetime.now(UTC)


def to_date(value: Any) -> datetime | None:
    """ISO-8601 text (``Z`` or an offset; a bare date is midnight UTC), epoch seconds, or
    a time; None for anything else, as a path that matches nothing."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return None
        return datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def duration(value: Any) -> timedelta:
    """``"2h"``, ``"1d12h"``, ``"-30m"``, or seconds."""
    if isinstance(value, str):
        return _span(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return -parse_duration(-value)
    return parse_duration(value)


@lru_cache(maxsize=256)
def _span(text: str) -> timedelta:
    # A formula names the same few spans on every record: parse each once.
    text = text.strip()
    return -parse_duration(text[1:]) if text.startswith("-") else parse_duration(text)


def date_add(value: Any, span: Any) -> datetime | None:
    when = to_date(value)
    if when is None:
        return None
    try:
        return when + duration(span)
    except (ValueError, OverflowError):  # not a span, or beyond the calendar: null
        return None


def epoch(value: Any) -> float | int | None:
    when = to_date(value)
    if when is None:
        return None
    seconds = when.timestamp()
    return int(seconds) if seconds.is_integer() else seconds


def format_date(value: Any, pattern: str) -> str | None:
    when = to_date(value)
    return None if when is None else when.astimezone(UTC).strftime(pattern)


def concat(*parts: Any) -> str:
    """Text of every part in turn; a null part adds nothing."""
    return "".join(_text(p) for p in parts if p is not None)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                return None
            return number if math.isfinite(number) else None
    return None


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else None


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else None


def _round(value: Any, digits: int = 0) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return round(value) if digits == 0 else round(value, int(digits))


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _to_string(value: Any) -> str | None:
    return None if value is None else _text(value)


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | dict) else None


# What formulas may call: nothing else is reachable from an ``expr:`` expression.
FORMULA_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "now": now,
    "date": to_date,
    "date_add": date_add,
    "duration": duration,
    "epoch": epoch,
    "format_date": format_date,
    "lower": _lower,
    "upper": _upper,
    "concat": concat,
    "to_number": to_number,
    "to_string": _to_string,
    "round": _round,
    "abs": lambda v: abs(v) if isinstance(v, int | float) and not isinstance(v, bool) else None,
    "length": _length,
    "min": min,
    "max": max,
    "coalesce": _coalesce,
}


def _json_date(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


class JMESPathFunctions(functions.Functions):  # type: ignore[misc]
    """podium's functions for JMESPath (its ``to_number``, ``to_string``, ``length``,
    ``abs``, ``min`` and ``max`` are JMESPath's own)."""

    @signature()
    def _func_now(self) -> str:
        return iso(now())

    @signature({"types": ["string", "number"]})
    def _func_date(self, value: Any) -> str | None:
        return _json_date(to_date(value))

    @signature({"types": ["string", "number"]}, {"types": ["string", "number"]})
    def _func_date_add(self, value: Any, span: Any) -> str | None:
        return _json_date(date_add(value, span))

    @signature({"types": ["string", "number"]})
    def _func_duration(self, span: Any) -> float | None:
        try:
            return duration(span).total_seconds()
        except ValueError:
            return None

    @signature({"types": ["string", "number"]})
    def _func_epoch(self, value: Any) -> float | int | None:
        return epoch(value)

    @signature({"types": ["string", "number"]}, {"types": ["string"]})
    def _func_format_date(self, value: Any, pattern: str) -> str | None:
        return format_date(value, pattern)

    @signature({"types": ["string", "null"]})
    def _func_lower(self, value: Any) -> Any:
        return _lower(value)

    @signature({"types": ["string", "null"]})
    def _func_upper(self, value: Any) -> Any:
        return _upper(value)

    @signature({"types": [], "variadic": True})
    def _func_concat(self, *parts: Any) -> str:
        return concat(*parts)

    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_round(self, value: Any, digits: int) -> Any:
        return _round(value, digits)

    @signature({"types": [], "variadic": True})
    def _func_coalesce(self, *values: Any) -> Any:
        return _coalesce(*values)
