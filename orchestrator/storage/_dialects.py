"""The ``INSERT … ON CONFLICT`` of the database at hand, loading only its own dialect.

SQLite and PostgreSQL each have their own upsert construct in SQLAlchemy. Importing both
dialects to pick one cost a SQLite run ~36 ms of start-up for the PostgreSQL dialect it
never uses.
"""

from __future__ import annotations

from typing import Any


def dialect_insert(dialect: str) -> Any:
    """``insert(table)`` with ``on_conflict_do_*`` for ``dialect`` ("postgresql", else
    SQLite's)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert
