"""``podium_dead_letters``: what a run could not do, kept to look at and to replay."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, desc, select, update

from ._schema import as_dict, dead_letters_table

TABLE = dead_letters_table


def select_dead_letters(
    conn: Connection, run_id: str | None, pipeline: str | None, limit: int
) -> list[dict[str, Any]]:
    query = select(TABLE).order_by(desc(TABLE.c.id)).limit(limit)
    if run_id is not None:
        query = query.where(TABLE.c.run_id == run_id)
    if pipeline is not None:
        query = query.where(TABLE.c.pipeline == pipeline)
    return [as_dict(r) for r in conn.execute(query)]


def mark_replayed(conn: Connection, ids: list[int], replay_run: str) -> None:
    if ids:
        conn.execute(update(TABLE).where(TABLE.c.id.in_(ids)).values(replayed_in=replay_run))


def prune_dead_letters(conn: Connection, before: datetime) -> int:
    return int(conn.execute(delete(TABLE).where(TABLE.c.at < before)).rowcount)
