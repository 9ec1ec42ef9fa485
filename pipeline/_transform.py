"""Record transforms compiled into one function per stage.

The built-in operations run in a fixed order — ``compute``, ``coerce``, ``filter``,
``rename``, ``drop``, ``select`` — so a stage reads like a small SELECT. A different
order is two transform stages. Each operation is bound once, so the per-record work is a
handful of dict operations (this is the hot path of every pipeline).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._coerce import COERCIONS
from ._expr import Expr, truthy

Record = dict[str, Any]
# A rejected record and the reason, e.g. a value that would not coerce.
Rejection = tuple[Record, str]
RecordOp = Callable[[Record], Record | None]


def _compute_op(compute: dict[str, Expr]) -> RecordOp:
    items = tuple(compute.items())

    def op(record: Record) -> Record:
        for field, expr in items:
            record[field] = expr.search(record)
        return record

    return op


def _coerce_op(coerce: dict[str, str]) -> RecordOp:
    items = tuple((field, COERCIONS[kind], kind) for field, kind in coerce.items())

    def op(record: Record) -> Record:
        for field, convert, kind in items:
            value = record.get(field)
            if value is not None:
                try:
                    record[field] = convert(value)
                except (TypeError, ValueError, OverflowError):
                    raise RejectRecord(
                        f"field {field!r}: cannot coerce {value!r} to {kind}"
                    ) from None
        return record

    return op


def _filter_op(expr: Expr) -> RecordOp:
    def op(record: Record) -> Record | None:
        return record if truthy(expr.search(record)) else None

    return op


def _rename_op(rename: dict[str, str]) -> RecordOp:
    items = tuple(rename.items())

    def op(record: Record) -> Record:
        for old, new in items:
            if old in record:
                record[new] = record.pop(old)
        return record

    return op


def _drop_op(drop: list[str]) -> RecordOp:
    fields = tuple(drop)

    def op(record: Record) -> Record:
        for field in fields:
            record.pop(field, None)
        return record

    return op


def _select_op(select: list[str]) -> RecordOp:
    fields = tuple(select)

    def op(record: Record) -> Record:
        return {f: record[f] for f in fields if f in record}

    return op


class RejectRecord(Exception):
    """Raised by an operation to reject one record without failing the stage."""


def compile_ops(
    *,
    compute: dict[str, Expr],
    coerce: dict[str, str],
    filter_: Expr | None,
    rename: dict[str, str],
    drop: list[str],
    select: list[str] | None,
) -> Callable[[list[Record]], tuple[list[Record], list[Rejection]]] | None:
    """One batch function for the built-in operations, or None when there are none."""
    ops: list[RecordOp] = []
    if compute:
        ops.append(_compute_op(compute))
    if coerce:
        ops.append(_coerce_op(coerce))
    if filter_ is not None:
        ops.append(_filter_op(filter_))
    if rename:
        ops.append(_rename_op(rename))
    if drop:
        ops.append(_drop_op(drop))
    if select is not None:
        ops.append(_select_op(select))
    if not ops:
        return None
    chain = tuple(ops)

    def apply(batch: list[Record]) -> tuple[list[Record], list[Rejection]]:
        out: list[Record] = []
        rejected: list[Rejection] = []
        append = out.append
        for record in batch:
            current: Record | None = record
            try:
                for op in chain:
                    current = op(current)
                    if current is None:
                        break
            except RejectRecord as exc:
                rejected.append((record, str(exc)))
                continue
            if current is not None:
                append(current)
        return out, rejected

    return apply
