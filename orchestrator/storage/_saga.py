"""``podium_saga_steps``: the side effects a run performed, each with what undoes it.

A step is written as soon as its side effect succeeded — in its own short transaction,
so a crash right after still knows what to undo — and marked ``compensated`` or
``failed`` once its compensation ran.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, desc, func, select, update

from ._schema import as_dict, saga_table, utcnow

TABLE = saga_table


def record_step(
    conn: Connection, run_id: str, stage: str, item: str, compensation: dict[str, Any]
) -> int:
    """Append a step; its sequence number orders the compensations (last done, first
    undone). A step already recorded for this item (a resumed run re-sent it, and the
    API answered the same under its idempotency key) keeps its place."""
    existing = conn.execute(
        select(TABLE.c.seq).where(
            (TABLE.c.run_id == run_id) & (TABLE.c.stage == stage) & (TABLE.c.item == item)
        )
    ).scalar()
    if existing is not None:
        return int(existing)
    last = conn.execute(select(func.max(TABLE.c.seq)).where(TABLE.c.run_id == run_id)).scalar()
    seq = int(last or 0) + 1
    conn.execute(
        TABLE.insert().values(
            run_id=run_id, seq=seq, stage=stage, item=item, compensation=compensation,
            status="done", attempts=0, at=utcnow(),
        )
    )  # fmt: skip
    return seq


def steps_to_undo(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """Steps done and not yet undone, the most recent first."""
    query = (
        select(TABLE)
        .where((TABLE.c.run_id == run_id) & (TABLE.c.status == "done"))
        .order_by(desc(TABLE.c.seq))
    )
    return [as_dict(r) for r in conn.execute(query)]


def all_steps(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    query = select(TABLE).where(TABLE.c.run_id == run_id).order_by(TABLE.c.seq)
    return [as_dict(r) for r in conn.execute(query)]


def settle_step(
    conn: Connection, run_id: str, seq: int, status: str, attempts: int, error: str | None
) -> None:
    conn.execute(
        update(TABLE)
        .where((TABLE.c.run_id == run_id) & (TABLE.c.seq == seq))
        .values(status=status, attempts=attempts, error=error, compensated_at=utcnow())
    )
