"""Fan-out at scale into SQLite: every record stored once, re-runs update in place."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import run
from podium.pipeline import Fetch, Pipeline, Store, Transform

from .servers import items_app

pytestmark = pytest.mark.anyio


def w1_pipeline(pages: int) -> Pipeline:
    return Pipeline(
        name="w1",
        stages=[
            Fetch(
                name="items",
                connector="api",
                for_each={"range": [0, pages]},
                as_="page",
                path="/items/{page}",
                records="items",
            ),
            Transform(
                name="shape",
                rename={"value": "amount"},
                coerce={"updated_at": "datetime"},
                select=["id", "name", "amount", "updated_at"],
            ),
            Store(name="save", table="items", key=["id"], batch_size=5000),
        ],
    )


def db_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


async def test_5000_urls_store_100k_rows_and_rerun_upserts(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    app, seen = items_app(pages=5000, per_page=20)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base, concurrency=64))
    pipeline = w1_pipeline(5000)

    first = await run(pipeline, [api], database=sqlite_url, concurrency=64)
    assert first.status == "ok", first.run.error
    assert seen.requests == 5000
    assert first.run.stored == 100_000
    with sqlite3.connect(db_path(sqlite_url)) as db:
        assert db.execute("select count(*), count(distinct id) from items").fetchone() == (
            100_000,
            100_000,
        )
        assert db.execute("select amount from items where id = 12345").fetchone() == (12345.0,)

    seen.generation = 2  # the API now answers new values for the same ids
    second = await run(pipeline, [api], database=sqlite_url, concurrency=64)
    assert second.status == "ok", second.run.error
    with sqlite3.connect(db_path(sqlite_url)) as db:
        assert db.execute("select count(*) from items").fetchone() == (100_000,)
        assert db.execute("select amount from items where id = 12345").fetchone() == (24690.0,)
        assert db.execute("select count(*) from items where amount != id * 2").fetchone() == (0,)
        runs = db.execute("select status, stored from podium_runs order by started_at").fetchall()
    assert runs == [("ok", 100_000), ("ok", 100_000)]


async def test_memory_stays_bounded_by_backpressure(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    """A store slower than the fetches holds the fetches back instead of buffering records."""
    app, seen = items_app(pages=400, per_page=50)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base, concurrency=32))
    in_flight_records: list[int] = []

    async def slow_sink(batch: list[dict]) -> list[dict]:
        # Records fetched but not yet through this stage can only be those in the bounded
        # edge buffers: sample that gap while the stage is deliberately slow.
        in_flight_records.append(seen.requests * 50 - sink_counts[0])
        sink_counts[0] += len(batch)
        import anyio

        await anyio.sleep(0.002)
        return batch

    sink_counts = [0]
    pipeline = Pipeline(
        name="bp",
        stages=[
            Fetch(
                name="items",
                connector="api",
                for_each={"range": [0, 400]},
                as_="page",
                path="/items/{page}",
                records="items",
            ),
            Transform(name="sink", call=slow_sink, per="batch"),
            Store(name="save", table="items", key=["id"]),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url)
    assert result.status == "ok"
    assert result.run.stored == 20_000
    # 32 batches buffered on the edge + 32 workers holding one each, 50 records a batch.
    assert max(in_flight_records) <= (32 + 32 + 2) * 50


async def test_for_each_over_a_list_of_tables(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    app, _seen = items_app(pages=3, per_page=2)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))
    pipeline = Pipeline(
        name="lists",
        stages=[
            Fetch(
                name="items",
                connector="api",
                for_each=[{"page": 0, "tag": "a"}, {"page": 2, "tag": "b"}],
                path="/items/{page}",
                records="items",
                carry=["tag"],
            ),
            Store(name="save", table="tagged", key=["id"]),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url)
    assert result.status == "ok"
    with sqlite3.connect(db_path(sqlite_url)) as db:
        rows = db.execute("select id, tag from tagged order by id").fetchall()
    assert rows == [(0, "a"), (1, "a"), (4, "b"), (5, "b")]


def test_app_is_an_aiohttp_application() -> None:
    app, _ = items_app(pages=1)
    assert isinstance(app, web.Application)
