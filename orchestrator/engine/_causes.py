"""Why a run lost work: its failures grouped by cause, with the first of each kept.

A run's error must say why, not only how much: "3 of 3 requests failed" is followed by
"3× HTTP 401 (first GET …/items/1; it answered '{"error": "bad token"}')". Causes are
counted as events are recorded, so the counts stay exact when the run keeps only its
first events.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Event kinds that mean a request did not deliver its records.
LOST_WORK = frozenset(
    {
        "request_failed",
        "bad_response",
        "credential_failed",
        "request_not_built",
        "incomplete_pagination",
    }
)


@dataclass(slots=True)
class Cause:
    kind: str
    cause: str
    count: int
    first: str  # the first occurrence's message (request and URL, redacted)
    excerpt: str | None = None  # the start of the first error response's body, redacted


class Causes:
    """Failures by (kind, cause), in the order their first occurrence came."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Cause] = {}

    def add(self, kind: str, message: str, detail: dict[str, Any]) -> None:
        if kind not in LOST_WORK:
            return
        cause = str(detail.get("cause") or message)
        found = self._by_key.get((kind, cause))
        if found is None:
            # "GET https://…/items/1: HTTP 401" → "GET https://…/items/1": the cause is
            # said once, beside its count.
            first = detail.get("first") or (
                message[: -len(cause)].rstrip(": ") if message.endswith(cause) else message
            )
            excerpt = detail.get("excerpt")
            self._by_key[kind, cause] = Cause(kind, cause, 1, first or message, excerpt)
        else:
            found.count += 1

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def top(self, n: int = 3) -> list[Cause]:
        return sorted(self._by_key.values(), key=lambda c: -c.count)[:n]

    def describe(self, n: int = 3) -> str:
        """``3× HTTP 401 (first GET …; it answered '…'); 1× timed out …``"""
        parts = []
        for c in self.top(n):
            answered = f"; it answered {c.excerpt!r}" if c.excerpt else ""
            first = f" (first {c.first}{answered})" if c.first != c.cause else answered
            parts.append(f"{c.count}× {c.cause}{first}")
        more = len(self._by_key) - n
        if more > 0:
            parts.append(f"and {more} other cause{'s' if more > 1 else ''}")
        return "; ".join(parts)

    def as_json(self, n: int = 10) -> list[dict[str, Any]]:
        return [asdict(c) for c in self.top(n)]
