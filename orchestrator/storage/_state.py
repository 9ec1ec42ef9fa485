"""``podium_state``: small durable values per pipeline (incremental high-water marks)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select, update

from ._dialects import dialect_insert
from ._schema import as_dict, state_table, utcnow


def advance_marks(conn: Connection, pipeline: str, marks: dict[str, Any]) -> None:
    """Raise each high-water mark to ``marks[key]`` unless a greater one is stored: two runs
    of a pipeline finishing together both succeed, and the mark never moves backwards.

    The row is created first if absent (an insert that yields to a concurrent one), then
    read under a row lock (PostgreSQL; SQLite's write lock is already held) and raised.
    """
    insert = dialect_insert(conn.dialect.name)
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


def select_state_like(conn: Connection, pipeline: str, key: str) -> dict[str, Any]:
    """``key`` and every ``key:…`` value of ``pipeline`` (an incremental fetch's marks)."""
    table = state_table
    match = (table.c.key == key) | table.c.key.startswith(f"{key}:", autoescape=True)
    query = select(table.c.key, table.c.value).where((table.c.pipeline == pipeline) & match)
    return {k: v for k, v in conn.execute(query)}


def select_all_state(conn: Connection, pipeline: str) -> list[dict[str, Any]]:
    query = (
        select(state_table).where(state_table.c.pipeline == pipeline).order_by(state_table.c.key)
    )
    return [as_dict(r) for r in conn.execute(query)]


def set_state(conn: Connection, pipeline: str, key: str, value: Any) -> None:
    """Set a value as given, backwards included (``podium state set``)."""
    insert = dialect_insert(conn.dialect.name)
    row = {"pipeline": pipeline, "key": key, "value": value, "updated_at": utcnow()}
    statement = insert(state_table).values(**row)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["pipeline", "key"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
    )


def delete_state(conn: Connection, pipeline: str, key: str | None) -> int:
    """Delete ``key`` and its partitions (``key:…``), or every value of the pipeline."""
    table = state_table
    where = table.c.pipeline == pipeline
    if key is not None:
        where &= (table.c.key == key) | table.c.key.startswith(f"{key}:", autoescape=True)
    return int(conn.execute(delete(table).where(where)).rowcount)


def select_state(conn: Connection, pipeline: str, keys: list[str]) -> dict[str, Any]:
    query = select(state_table.c.key, state_table.c.value).where(
        (state_table.c.pipeline == pipeline) & state_table.c.key.in_(keys)
    )
    return {key: value for key, value in conn.execute(query)}
