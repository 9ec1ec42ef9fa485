"""W1 reference: raw aiohttp + sqlite3, the lowest-overhead way to do W1 in Python.

    python bench/w1_reference.py --url http://127.0.0.1:PORT --db /path/to/w1.db

5,000 GETs at concurrency 64, the same transform as bench/w1.toml, upserted in batches of 5,000
rows. Everything podium adds on top (config, stages, retries, state) is measured against this.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from datetime import datetime

import aiohttp
import orjson

PAGES = 5_000
CONCURRENCY = 64
BATCH = 5_000

Row = tuple[int, str, float, str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    name TEXT,
    amount REAL,
    updated_at TEXT
)
"""

_UPSERT = """
INSERT INTO items (id, name, amount, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    name = excluded.name,
    amount = excluded.amount,
    updated_at = excluded.updated_at
"""


def transform(item: dict) -> Row:
    # Same as the podium config: rename value->amount, coerce updated_at to an aware datetime
    # (stored as ISO text), keep only the four selected fields.
    updated_at = datetime.fromisoformat(item["updated_at"]).isoformat()
    return (item["id"], item["name"], item["value"], updated_at)


class Store:
    """Buffers rows and upserts them in fixed-size batches, one transaction per batch."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(_SCHEMA)
        self.conn.commit()
        self.pending: list[Row] = []

    def add(self, rows: list[Row]) -> None:
        self.pending.extend(rows)
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        # Runs on the event loop thread: ~10 ms per batch, cheaper than a thread hand-off.
        with self.conn:
            self.conn.executemany(_UPSERT, self.pending)
        self.pending = []

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def close(self) -> None:
        self.conn.close()


async def worker(
    session: aiohttp.ClientSession, base_url: str, queue: asyncio.Queue[int], store: Store
) -> None:
    # Bounded: the queue is filled once up front and never refilled.
    while True:
        try:
            page = queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        async with session.get(f"{base_url}/items/{page}") as resp:
            resp.raise_for_status()
            body = await resp.read()
        payload = orjson.loads(body)
        store.add([transform(item) for item in payload["items"]])


async def run(base_url: str, db_path: str) -> int:
    store = Store(db_path)
    try:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for page in range(PAGES):
            queue.put_nowait(page)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            asyncio.TaskGroup() as tg,
        ):
            for _ in range(CONCURRENCY):
                tg.create_task(worker(session, base_url, queue, store))
        store.flush()
        return store.count()
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="W1 reference: raw aiohttp + sqlite3")
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:43123")
    parser.add_argument("--db", required=True, help="SQLite file (created if missing)")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.url.rstrip("/"), args.db))
    print(f"rows {rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
