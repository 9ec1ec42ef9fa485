"""Type coercions for the ``coerce`` transform: the types API payloads most often get wrong."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Literal

CoerceName = Literal["int", "float", "str", "bool", "datetime", "date", "timestamp"]

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off", ""}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"not a whole number: {value!r}")
        return int(value)
    return int(value)


def _to_datetime(value: Any) -> datetime:
    """ISO 8601 text (``Z`` accepted) or epoch seconds; naive results are taken as UTC."""
    if value.__class__ is str:  # the common case first: this runs once per record
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    else:
        parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value)
    return datetime.fromisoformat(text).date() if "T" in text else date.fromisoformat(text)


def _to_timestamp(value: Any) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


COERCIONS: dict[str, Callable[[Any], Any]] = {
    "int": _to_int,
    "float": float,
    "str": str,
    "bool": _to_bool,
    "datetime": _to_datetime,
    "date": _to_date,
    "timestamp": _to_timestamp,
}
