"""Opening a journal: a fresh file gets every table; an older one is brought up to date.

``create_tables`` inspects only the tables that existed before it ran (a table it has
just created is current), so the upgrade path needs a test of its own: a journal written
by an older podium, here one without a column and an index added since.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from podium.orchestrator.storage import Journal, open_database

pytestmark = pytest.mark.anyio


def _shape(conn: Connection) -> tuple[set[str], set[str], set[str]]:
    inspector = sa.inspect(conn)
    return (
        set(inspector.get_table_names()),
        {c["name"] for c in inspector.get_columns("podium_runs")},
        {ix["name"] for ix in inspector.get_indexes("podium_runs")},
    )


def _age(conn: Connection) -> None:
    """What an older podium left: no ``replay_of`` column, no idempotency index."""
    conn.exec_driver_sql("DROP INDEX uq_podium_runs_idempotency")
    conn.exec_driver_sql("ALTER TABLE podium_runs DROP COLUMN replay_of")


async def test_a_fresh_file_gets_every_table_with_its_columns_and_indexes(
    sqlite_url: str,
) -> None:
    async with open_database(sqlite_url) as db:
        await Journal(db).create_tables()
        tables, columns, indexes = await db.run("reading the schema", _shape)
    assert {"podium_runs", "podium_checkpoints", "podium_items_done"} <= tables
    assert {"replay_of", "lease_expires_at", "pipeline_hash"} <= columns
    assert {"uq_podium_runs_idempotency", "uq_podium_runs_lock"} <= indexes


async def test_an_older_journal_gains_the_missing_column_and_index(sqlite_url: str) -> None:
    async with open_database(sqlite_url) as db:
        await Journal(db).create_tables()
        await db.run("ageing the journal", _age)
        _tables, columns, indexes = await db.run("reading the schema", _shape)
    assert "replay_of" not in columns and "uq_podium_runs_idempotency" not in indexes
    async with open_database(sqlite_url) as db:  # a new process opens the older file
        await Journal(db).create_tables()
        _tables, columns, indexes = await db.run("reading the schema", _shape)
    assert "replay_of" in columns
    assert "uq_podium_runs_idempotency" in indexes


async def test_an_older_outbox_gains_the_per_destination_column(sqlite_url: str) -> None:
    """An outbox from before per-destination delivery: its rows stay readable (nothing
    delivered yet) and new ones record where they went."""

    def age(conn: Connection) -> None:
        conn.exec_driver_sql("ALTER TABLE podium_alert_outbox DROP COLUMN delivered")

    def columns(conn: Connection) -> set[str]:
        return {c["name"] for c in sa.inspect(conn).get_columns("podium_alert_outbox")}

    async with open_database(sqlite_url) as db:
        await Journal(db).create_tables()
        await db.run("ageing the journal", age)
        assert "delivered" not in await db.run("reading the schema", columns)
    async with open_database(sqlite_url) as db:
        await Journal(db).create_tables()
        assert "delivered" in await db.run("reading the schema", columns)
