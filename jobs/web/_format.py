"""How the pages write times, durations, shares and links (Jinja2 filters).

Times are shown in UTC, as the journal keeps them and as ``podium runs`` prints them,
with how long ago beside them; the page's little script does not rewrite them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote


def _as_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def when(value: Any) -> str:
    """``2026-12-01 08:00:03 UTC``; an empty string for no time."""
    at = _as_time(value)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at is not None else ""


def ago(value: Any, now: datetime) -> str:
    """``3m ago``, or ``in 2m`` for a time to come."""
    at = _as_time(value)
    if at is None:
        return ""
    seconds = (now - at).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            text = f"{seconds // size:.0f}{unit}"
            break
    else:
        text = f"{seconds:.0f}s"
    return f"in {text}" if future else f"{text} ago"


def seconds(value: float | None) -> str:
    """A run's duration: ``0.18 s``, ``12.4 s``, ``3m 05s``, ``2h 10m``."""
    if value is None:
        return ""
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def percent(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio * 100:.2f}%"


def uptime_class(ratio: float | None) -> str:
    if ratio is None:
        return "none"
    return "up" if ratio >= 0.999 else "degraded" if ratio >= 0.99 else "down"


def milliseconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def segment(value: Any) -> str:
    """A name as one URL path segment (a ``/`` in it stays inside the segment)."""
    return quote(str(value), safe="")


def short_id(value: Any) -> str:
    return str(value or "")[:8]


FILTERS = {
    "when": when,
    "ago": ago,
    "seconds": seconds,
    "percent": percent,
    "uptime_class": uptime_class,
    "ms": milliseconds,
    "segment": segment,
    "short_id": short_id,
}
