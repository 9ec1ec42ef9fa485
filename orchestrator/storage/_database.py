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

import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from podium.pipeline import ConfigError, StoreError

from ..config._database_url import database_kind

T = TypeVar("T")

# How long a write waits for another writer's lock on a SQLite file, in all.
LOCKED_WAIT = 30.0
SQLITE_BUSY_MS = 20


def engine_url(url: str) -> sa.URL:
    """The URL with the driver podium uses for it; a ConfigError for anything else."""
    kind = database_kind(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {url!r}", where="database.url") from None
    return parsed.set(drivername="sqlite+pysqlite" if kind == "sqlite" else "postgresql+asyncpg")


def _is_locked(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (podium runs, podium show) work while a run writes; NORMAL sync is
    # durable across process crashes, which is what a pipeline store needs.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Short on purpose: the wait for a locked file happens in Database.run, off the loop.
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


class Database:
    """An engine and the way to run work on it; create with ``open_database``."""

    def __init__(self, url: str, engine: Any, *, is_async: bool) -> None:
        self.url = url
        self._engine = engine
        self._async = is_async
        # Set by the journal once its tables are known to exist and to be current.
        self.journal_ready = False

    @property
    def dialect(self) -> sa.Dialect:
        dialect: sa.Dialect = self._engine.dialect
        return dialect

    @property
    def name(self) -> str:
        return self.dialect.name

    async def run(
        self,
        what: str,
        work: Callable[..., T],
        *args: Any,
        on_retry: Callable[[], None] | None = None,
    ) -> T:
        """Run ``work(connection, *args)`` in one transaction; commit if it returns.

        A SQLite file locked by another writer is waited for here, asynchronously (the
        driver's own busy wait would freeze the event loop): the transaction is rolled
        back, ``on_retry`` lets the caller forget state from it, and it runs again.
        Driver errors become a StoreError that says ``what`` was being done.
        """
        deadline = time.monotonic() + LOCKED_WAIT
        delay = 0.01
        while True:
            try:
                result: T
                if self._async:
                    async with self._engine.begin() as conn:
                        result = await conn.run_sync(work, *args)
                else:
                    with self._engine.begin() as conn:
                        result = work(conn, *args)
                return result
            except OperationalError as exc:
                if not _is_locked(exc) or time.monotonic() + delay > deadline:
                    raise store_error(exc, what) from None
            except (SQLAlchemyError, OSError) as exc:
                raise store_error(exc, what) from None
            if on_retry is not None:
                on_retry()
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _dispose(self) -> None:
        if self._async:
            await self._engine.dispose()
        else:
            self._engine.dispose()


@asynccontextmanager
async def open_database(url: str) -> AsyncIterator[Database]:
    """A database owned by this context: every connection is closed on exit.

    The first connection is made here, so a file that cannot be opened or a server that
    cannot be reached is one error naming ``database.url`` and the path or host — before
    any request goes out, not halfway through a run.
    """
    target = engine_url(url)
    if target.drivername.startswith("sqlite"):
        engine = sa.create_engine(target)
        sa.event.listen(engine, "connect", _tune_sqlite)
        database = Database(url, engine, is_async=False)
    else:
        from sqlalchemy.ext.asyncio import create_async_engine

        database = Database(url, create_async_engine(target), is_async=True)
    try:
        await _connect_once(database, target)
        yield database
    finally:
        await database._dispose()


async def _connect_once(database: Database, target: sa.URL) -> None:
    try:
        if database._async:
            async with database._engine.connect():
                pass
        else:
            with database._engine.connect():
                pass
    except (SQLAlchemyError, OSError) as exc:
        raise StoreError(
            f"cannot open {_describe(target)}: {_reason(exc)}", where="database.url"
        ) from None


def _describe(target: sa.URL) -> str:
    if target.drivername.startswith("sqlite"):
        path = Path(target.database or "")
        missing = "" if path.parent.exists() else f" (the folder {path.parent} does not exist)"
        return f"the SQLite database {path}{missing}"
    where = f"{target.host or 'localhost'}:{target.port or 5432}"
    return f"PostgreSQL at {where} (database {target.database!r}, user {target.username!r})"


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, OSError) and orig.errno:
        return os.strerror(orig.errno).lower()
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def store_error(exc: SQLAlchemyError | OSError, what: str) -> StoreError:
    """Translate a driver error into one line that names what was being written."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return StoreError(f"{what}: {text}")
