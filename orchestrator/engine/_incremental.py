"""Incremental fetches: each one's high-water mark, kept in ``podium_state``.

A fetch with ``incremental = { cursor_field = "updated_at", param = "since" }`` sends the
mark of the last good run as ``?since=…`` and tracks the highest ``updated_at`` among the
records it receives. The new mark is written together with the run's final row, after
every stage has finished — so after every record was stored — and only when the run
ended ``ok``: nothing failed, was rejected or dropped anywhere, so a record that was never
stored is never skipped. A partial run leaves the mark where it was, and the next run
fetches the same window again (upserts make that harmless).
"""

from __future__ import annotations

from typing import Any

from podium.pipeline import Fetch, Pipeline, Record, ResponseError

from ..storage import Journal

_KEY_PREFIX = "incremental:"


def state_key(stage: Fetch) -> str:
    return f"{_KEY_PREFIX}{stage.name}"


class CursorTracker:
    """One incremental fetch within a run: the mark it started from and the highest seen."""

    __slots__ = ("_parts", "field", "high", "param", "start")

    def __init__(self, stage: Fetch, stored: Any) -> None:
        assert stage.incremental is not None
        self.field = stage.incremental.cursor_field
        self.param = stage.incremental.param
        self._parts = self.field.split(".")
        self.start = stage.incremental.initial if stored is None else stored
        self.high = self.start

    def params(self) -> dict[str, Any]:
        return {} if self.start is None else {self.param: self.start}

    def observe(self, records: list[Record]) -> None:
        field, high, parts = self.field, self.high, self._parts
        for record in records:
            value: Any = record.get(parts[0])
            for part in parts[1:]:
                value = value.get(part) if isinstance(value, dict) else None
            if value is None or isinstance(value, dict | list | bool):
                continue
            try:
                if high is None or value > high:
                    high = value
            except TypeError:
                raise ResponseError(
                    f"incremental cursor_field {field!r} mixes {type(high).__name__} and "
                    f"{type(value).__name__} values ({high!r}, {value!r})"
                ) from None
        self.high = high


async def load_cursors(journal: Journal, pipeline: Pipeline) -> dict[str, CursorTracker]:
    """Trackers for the pipeline's incremental fetches, started from their stored marks."""
    stages = [s for s in pipeline.stages if isinstance(s, Fetch) and s.incremental is not None]
    if not stages:
        return {}
    stored = await journal.state(pipeline.name, [state_key(s) for s in stages])
    return {s.name: CursorTracker(s, stored.get(state_key(s))) for s in stages}


def advanced_marks(cursors: dict[str, CursorTracker]) -> dict[str, Any]:
    """The marks to store (the caller decides the run was clean): those that moved."""
    return {
        f"{_KEY_PREFIX}{name}": tracker.high
        for name, tracker in cursors.items()
        if tracker.high != tracker.start
    }
