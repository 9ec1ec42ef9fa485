"""Incremental fetches: their marks, kept in ``podium_state``, one per partition.

A fetch with ``incremental = { cursor_field = "updated_at", param = "since" }`` sends the
mark of the last good run as ``?since=…`` and tracks the highest ``updated_at`` among the
records it receives; with ``window = { … }`` it asks for the time since the mark in date
windows, one request each, and its mark becomes the end of the range it asked for.

A fetch that fans out keeps one mark per partition (``incremental:<stage>:<partition>``),
so each repository or city goes on from its own mark and a new one starts from the
beginning; the stage's single mark of an older podium is where partitions without one
start.

Marks are written together with the run's final row, after every stage has finished —
so after every record was stored — and only when the run ended ``ok``: nothing failed,
was rejected or dropped anywhere, so a record that was never stored is never skipped. A
partial run leaves every mark where it was, and the next run fetches the same again
(upserts make that harmless).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from podium.pipeline import Fetch, Incremental, Pipeline, Record, ResponseError, Template, lookup
from podium.pipeline._windows import parse_mark

from ..storage import Journal

_KEY_PREFIX = "incremental:"


def state_key(stage: str, partition: str = "") -> str:
    return f"{_KEY_PREFIX}{stage}" + (f":{partition}" if partition else "")


class CursorTracker:
    """One partition of a cursor-field fetch: the mark it started from, the highest seen."""

    __slots__ = ("_parts", "field", "high", "key", "param", "start")

    def __init__(self, incremental: Incremental, stored: Any, key: str) -> None:
        assert incremental.cursor_field is not None and incremental.param is not None
        self.key = key
        self.field = incremental.cursor_field
        self.param = incremental.param
        self._parts = self.field.split(".")
        self.start = incremental.initial if stored is None else stored
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


class WindowTracker:
    """One partition of a windowed fetch: the windows this run asks for, and the mark
    it leaves when the run is clean (the end of its range)."""

    __slots__ = ("high", "key", "start", "windows")

    def __init__(self, incremental: Incremental, stored: Any, key: str, now: datetime) -> None:
        window = incremental.window
        assert window is not None
        self.key = key
        self.start = stored
        planned = list(window.windows(parse_mark(stored), now))
        self.windows = [
            ({window.start_param: window.render(a), window.end_param: window.render(b)}, a)
            for a, b in planned
        ]
        self.high = planned[-1][1].isoformat() if planned else stored

    def observe(self, records: list[Record]) -> None:
        """Records say nothing about a window's mark: its end does."""


Tracker = CursorTracker | WindowTracker


class Cursors:
    """Every partition of one incremental fetch in a run."""

    def __init__(self, stage: Fetch, stored: dict[str, Any], now: datetime) -> None:
        assert stage.incremental is not None
        self.stage = stage
        self.incremental = stage.incremental
        self.stored = stored
        # Partitions without a mark start from the stage's single mark (an older podium's).
        self.fallback = stored.get(state_key(stage.name))
        self.partitioned = stage.fan_out_size() != 1
        self.now = now
        self.trackers: dict[str, Tracker] = {}
        source = self.incremental.partition
        self._template = Template(source) if source is not None else None
        self._fields = sorted(f for f in stage.template_fields() if not f.startswith("params."))

    def for_item(self, values: dict[str, Any]) -> Tracker:
        partition = self.partition_of(values) if self.partitioned else ""
        tracker = self.trackers.get(partition)
        if tracker is None:
            key = state_key(self.stage.name, partition)
            stored = self.stored.get(key, self.fallback)
            if self.incremental.window is not None:
                tracker = WindowTracker(self.incremental, stored, key, self.now)
            else:
                tracker = CursorTracker(self.incremental, stored, key)
            self.trackers[partition] = tracker
        return tracker

    def partition_of(self, values: dict[str, Any]) -> str:
        """The item's partition: ``partition`` rendered, else the values its request's
        templates use (what tells one request from another), else a digest."""
        if self._template is not None:
            return str(self._template.render(values, quote=str))
        if self._fields:
            return "&".join(f"{f}={lookup(values, f)}" for f in self._fields)
        raw = repr(sorted(values.items())).encode()
        return hashlib.sha1(raw).hexdigest()[:16]

    def marks(self) -> dict[str, Any]:
        return {t.key: t.high for t in self.trackers.values() if t.high != t.start}


async def load_cursors(journal: Journal, pipeline: Pipeline) -> dict[str, Cursors]:
    """The pipeline's incremental fetches, each with its stored marks."""
    stages = [s for s in pipeline.stages if isinstance(s, Fetch) and s.incremental is not None]
    if not stages:
        return {}
    now = datetime.now(UTC)
    out: dict[str, Cursors] = {}
    for stage in stages:
        stored = await journal.state_like(pipeline.name, state_key(stage.name))
        out[stage.name] = Cursors(stage, stored, now)
    return out


def advanced_marks(cursors: dict[str, Cursors]) -> dict[str, Any]:
    """The marks to store (the caller decides the run was clean): those that moved."""
    marks: dict[str, Any] = {}
    for partitions in cursors.values():
        marks.update(partitions.marks())
    return marks
