"""``podium_state``: small durable values per pipeline (incremental high-water marks)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from ._schema import state_table, utcnow


def advance_marks(conn: Connection, pipeline: str, marks: dict[str, Any]) -> None:
    """Raise each high-water mark to ``marks[key]`` unless a greater one is stored: two runs
    of a pipeline finishing together both succeed, and the mark never moves backwards.

    The row is created first if absent (an insert that yields to a concurrent one), then
    read under a row lock (PostgreSQL; SQLite's write lock is already held) and raised.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    table, now = state_table, utcnow()
    for key, value in marks.items():
        row = {"pipeline": pipeline, "key": key, "value": value, "updated_at": now}
        conn.execute(insert(table).values(**row).on_conflict_do_nothing())
        where = (table.c.pipeline == pipeline) & (table.c.key == key)
        current = conn.execute(select(table.c.value).where(where).with_for_update()).scalar()
        if _greater(value, current):
            conn.execute(update(table).where(where).values(value=value, updated_at=now))


def _greater(new: Any, old: Any) -> bool:
    """Whether mark ``new`` is past ``old``; a mark of another type (the cursor field
    changed) replaces the old one, which cannot be compared with it."""
    if old is None:
        return True
    numbers = (int, float)
    comparable = (isinstance(new, numbers) and isinstance(old, numbers)) or type(new) is type(old)
    if not comparable or isinstance(new, bool | dict | list):
        return bool(new != old)
    return bool(new > old)


def select_state(conn: Connection, pipeline: str, keys: list[str]) -> dict[str, Any]:
    query = select(state_table.c.key, state_table.c.value).where(
        (state_table.c.pipeline == pipeline) & state_table.c.key.in_(keys)
    )
    return {key: value for key, value in conn.execute(query)}
