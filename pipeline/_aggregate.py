"""Aggregation: merging records from several inputs by key, and group-by reductions.

Both keep one entry per key, never the records themselves, so memory grows with the
number of distinct keys rather than with the number of records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._errors import StageError

Record = dict[str, Any]
Key = tuple[Any, ...]


class Merger:
    """Merges records that share a key.

    On a field present in several inputs, the input listed later in ``from`` wins — decided
    by the declared order, never by which response happened to arrive first, so a merge
    gives the same row on every run.
    """

    def __init__(self, key: list[str], inputs: tuple[str, ...], how: str) -> None:
        self._key = tuple(key)
        self._rank = {name: i for i, name in enumerate(dict.fromkeys(inputs))}
        self._inner = how == "inner"
        self._parts: dict[Key, list[Record | None]] = {}

    def add(self, source: str, batch: list[Record]) -> None:
        key_fields = self._key
        slot = self._rank.get(source, len(self._rank) - 1)
        width = len(self._rank)
        for record in batch:
            try:
                key = tuple(record[f] for f in key_fields)
            except KeyError as exc:
                raise StageError(
                    f"record from {source!r} has no merge key field {exc.args[0]!r}"
                ) from None
            parts = self._parts.get(key)
            if parts is None:
                parts = self._parts[key] = [None] * width
            existing = parts[slot]
            if existing is None:
                parts[slot] = record
            else:
                existing.update(record)

    def results(self) -> list[Record]:
        out: list[Record] = []
        for parts in self._parts.values():
            if self._inner and any(p is None for p in parts):
                continue
            merged: Record = {}
            for part in parts:
                if part is not None:
                    merged.update(part)
            out.append(merged)
        return out


_REDUCERS = ("count", "sum", "min", "max", "avg")


def parse_metric(spec: str) -> tuple[str, str | None]:
    """``"count"`` or ``"sum:field"`` → (reducer, field)."""
    reducer, _, field = spec.partition(":")
    if reducer not in _REDUCERS:
        raise ValueError(f"unknown reducer {reducer!r} in {spec!r} (known: {', '.join(_REDUCERS)})")
    if reducer == "count":
        return reducer, field or None
    if not field:
        raise ValueError(f"{reducer!r} needs a field, as in '{reducer}:price'")
    return reducer, field


class _Acc:
    __slots__ = ("count", "max", "min", "n", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.n = 0
        self.sum: float = 0
        self.min: Any = None
        self.max: Any = None


def _add_sum(acc: _Acc, value: Any, spec: str) -> None:
    try:
        acc.sum += value
    except TypeError:
        raise StageError(f"{spec} got a non-number {value!r}") from None
    acc.n += 1


def _add_min(acc: _Acc, value: Any, spec: str) -> None:
    try:
        if acc.min is None or value < acc.min:
            acc.min = value
    except TypeError:
        raise StageError(f"{spec} cannot compare {value!r} with {acc.min!r}") from None


def _add_max(acc: _Acc, value: Any, spec: str) -> None:
    try:
        if acc.max is None or value > acc.max:
            acc.max = value
    except TypeError:
        raise StageError(f"{spec} cannot compare {value!r} with {acc.max!r}") from None


def _add_count(acc: _Acc, value: Any, spec: str) -> None:
    return None  # counting happens for every non-null value, before this


_ADD = {"count": _add_count, "sum": _add_sum, "avg": _add_sum, "min": _add_min, "max": _add_max}
_RESULT: dict[str, Callable[[_Acc], Any]] = {
    "count": lambda acc: acc.count,
    "sum": lambda acc: acc.sum,
    "avg": lambda acc: acc.sum / acc.n if acc.n else None,
    "min": lambda acc: acc.min,
    "max": lambda acc: acc.max,
}


class GroupBy:
    """Group-by with count/sum/min/max/avg; null values are ignored, as in SQL."""

    def __init__(self, by: list[str], metrics: dict[str, str]) -> None:
        self._by = tuple(by)
        self._metrics = {out: parse_metric(spec) for out, spec in metrics.items()}
        # (output, field or None for a plain count, accumulate function, spec for errors)
        self._steps = [
            (out, field, _ADD[reducer], spec)
            for (out, (reducer, field)), spec in zip(
                self._metrics.items(), metrics.values(), strict=True
            )
        ]
        self._groups: dict[Key, dict[str, _Acc]] = {}

    def add(self, source: str, batch: list[Record]) -> None:
        by, steps, groups = self._by, self._steps, self._groups
        for record in batch:
            key = tuple(record.get(f) for f in by)
            accs = groups.get(key)
            if accs is None:
                accs = groups[key] = {out: _Acc() for out in self._metrics}
            for out, field, add, spec in steps:
                acc = accs[out]
                if field is None:
                    acc.count += 1
                    continue
                value = record.get(field)
                if value is not None:
                    acc.count += 1
                    add(acc, value, spec)

    def results(self) -> list[Record]:
        out: list[Record] = []
        for key, accs in self._groups.items():
            row: Record = dict(zip(self._by, key, strict=True))
            for name, (reducer, _field) in self._metrics.items():
                row[name] = _RESULT[reducer](accs[name])
            out.append(row)
        return out
