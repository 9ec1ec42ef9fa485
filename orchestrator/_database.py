"""The database a run writes to: one owner for the engine, one way to run work on it.

All database work is written as plain synchronous SQLAlchemy Core functions of a
``Connection`` and handed to ``Database.run``, which picks how to execute them:

- SQLite runs them inline on the event loop's thread. SQLite is in-process CPU work;
  pushed to a thread (as aiosqlite does) every row step hands the GIL back and forth with
  the busy event loop, which measured 1.8× slower for a W1 store and pathologically slow
  under load. A batch of a few thousand rows blocks the loop for some milliseconds.
- PostgreSQL runs them through the asyncpg driver with ``AsyncConnection.run_sync``,
  which suspends at every network wait instead of blocking.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from pipeline import ConfigError, StoreError

T = TypeVar("T")

_SQLITE = ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite")
_POSTGRES = ("postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg2")


def engine_url(url: str) -> sa.URL:
    """The URL with the driver podium uses for it; a ConfigError for anything else."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {url!r}", where="database.url") from None
    if parsed.drivername in _SQLITE:
        return parsed.set(drivername="sqlite+pysqlite")
    if parsed.drivername in _POSTGRES:
        return parsed.set(drivername="postgresql+asyncpg")
    raise ConfigError(
        f"unsupported database {parsed.drivername!r} (use sqlite:/// or postgresql://)",
        where="database.url",
    )


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (podium runs, podium show) work while a run writes; NORMAL sync is
    # durable across process crashes, which is what a pipeline store needs.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """An engine and the way to run work on it; create with ``open_database``."""

    def __init__(self, url: str, engine: Any, *, is_async: bool) -> None:
        self.url = url
        self._engine = engine
        self._async = is_async

    @property
    def dialect(self) -> sa.Dialect:
        return self._engine.dialect

    @property
    def name(self) -> str:
        return self._engine.dialect.name

    async def run(self, what: str, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(connection, *args)`` in one transaction; commit if it returns.

        Driver errors become a StoreError that says ``what`` was being done.
        """
        try:
            if self._async:
                async with self._engine.begin() as conn:
                    return await conn.run_sync(work, *args)
            with self._engine.begin() as conn:
                return work(conn, *args)
        except (SQLAlchemyError, OSError) as exc:
            raise store_error(exc, what) from None

    async def _dispose(self) -> None:
        if self._async:
            await self._engine.dispose()
        else:
            self._engine.dispose()


@asynccontextmanager
async def open_database(url: str) -> AsyncIterator[Database]:
    """A database owned by this context: every connection is closed on exit."""
    target = engine_url(url)
    if target.drivername.startswith("sqlite"):
        engine = sa.create_engine(target)
        sa.event.listen(engine, "connect", _tune_sqlite)
        database = Database(url, engine, is_async=False)
    else:
        from sqlalchemy.ext.asyncio import create_async_engine

        database = Database(url, create_async_engine(target), is_async=True)
    try:
        yield database
    finally:
        await database._dispose()


def store_error(exc: SQLAlchemyError | OSError, what: str) -> StoreError:
    """Translate a driver error into one line that names what was being written."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return StoreError(f"{what}: {text}")
