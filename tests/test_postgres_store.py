"""The store path against the real PostgreSQL: upserts, schema growth, column types, and
a SQLModel class as the table (that last one on SQLite too)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from loguru import logger
from sqlmodel import Field, SQLModel

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import run
from podium.pipeline import Fetch, Pipeline, Store, Transform

from .conftest import podium_logging
from .servers import items_app

pytestmark = [pytest.mark.anyio]

UPDATED_AT = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


class StoreReading(SQLModel, table=True):
    """A user's table model: its types differ from what podium would infer."""

    __tablename__ = "model_readings"

    id: int = Field(primary_key=True)
    name: str = Field(max_length=40)
    amount: Decimal = Field(max_digits=14, decimal_places=2)
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    meta: dict | None = Field(default=None, sa_type=sa.JSON)


def fetch_items(pages: int) -> Fetch:
    return Fetch(
        name="items",
        connector="api",
        for_each={"range": [0, pages]},
        as_="page",
        path="/items/{page}",
        records="items",
    )


def enrich(record: dict[str, Any]) -> dict[str, Any]:
    """JSON-shaped values and a datetime written in another zone than UTC."""
    n = record["id"]
    record["meta"] = {"page": n // 30, "tags": ["even" if n % 2 == 0 else "odd"]}
    record["history"] = [n, n + 1]
    record["local_time"] = "2026-11-26T10:00:00+02:00"
    return record


def items_pipeline(pages: int) -> Pipeline:
    return Pipeline(
        name="pg_items",
        stages=[
            fetch_items(pages),
            Transform(name="enrich", call=enrich),
            Transform(
                name="shape",
                rename={"value": "amount"},
                coerce={"updated_at": "datetime", "local_time": "datetime"},
            ),
            Store(name="save", table="items", key=["id"], batch_size=1000),
        ],
    )


def api(base: str, concurrency: int = 16) -> HttpConnector:
    return HttpConnector(
        "api", ConnectorConfig(kind="http", base_url=base, concurrency=concurrency)
    )


async def pg(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def column_types(url: str, table: str) -> dict[str, str]:
    found = await pg(
        url,
        "select column_name, data_type from information_schema.columns where table_name = $1",
        table,
    )
    return dict(found)  # type: ignore[arg-type]


@pytest.mark.postgres
async def test_fan_out_store_and_rerun_upsert(serve: Callable[..., Any], postgres_url: str) -> None:
    app, seen = items_app(pages=100, per_page=30)
    base = await serve(app)
    pipeline = items_pipeline(100)

    first = await run(pipeline, [api(base)], database=postgres_url)

    assert first.status == "ok", first.run.error
    assert first.run.stored == 3000
    assert await pg(postgres_url, "select count(*), count(distinct id) from items") == [
        (3000, 3000)
    ]
    assert await column_types(postgres_url, "items") == {
        "id": "bigint",
        "name": "text",
        "amount": "bigint",
        "updated_at": "timestamp with time zone",
        "local_time": "timestamp with time zone",
        "meta": "json",
        "history": "json",
    }
    [(name, amount, updated_at, local_time, meta, history)] = await pg(
        postgres_url,
        "select name, amount, updated_at, local_time, meta, history from items where id = 1234",
    )
    assert (name, amount) == ("item-1234", 1234)
    assert updated_at == UPDATED_AT
    assert local_time == UPDATED_AT  # 10:00+02:00 is the same instant
    assert json.loads(meta) == {"page": 41, "tags": ["even"]}
    assert json.loads(history) == [1234, 1235]

    seen.generation = 3
    second = await run(pipeline, [api(base)], database=postgres_url)

    assert second.status == "ok", second.run.error
    assert await pg(postgres_url, "select count(*), count(distinct id) from items") == [
        (3000, 3000)
    ]
    assert await pg(postgres_url, "select count(*) from items where amount != id * 3") == [(0,)]
    assert await pg(postgres_url, "select status, stored from podium_runs order by started_at") == [
        ("ok", 3000),
        ("ok", 3000),
    ]


@pytest.mark.postgres
async def test_a_field_appearing_in_later_records_adds_a_column(
    serve: Callable[..., Any], postgres_url: str
) -> None:
    app, _seen = items_app(pages=20, per_page=10)
    base = await serve(app)

    def late_note(record: dict[str, Any]) -> dict[str, Any]:
        if record["id"] >= 100:
            record["note"] = f"late-{record['id']}"
        return record

    pipeline = Pipeline(
        name="pg_grow",
        stages=[
            fetch_items(20),
            Transform(name="note", call=late_note),
            # One fetch at a time and small batches: the table exists before "note" shows up.
            Store(name="save", table="grow", key=["id"], batch_size=50),
        ],
    )

    logged: list[str] = []
    sink = logger.add(logged.append, level="INFO", format="{message}")
    try:
        with podium_logging():
            result = await run(pipeline, [api(base, concurrency=1)], database=postgres_url)
    finally:
        logger.remove(sink)

    assert result.status == "ok", result.run.error
    assert any(line.startswith("table grow: added column note (TEXT)") for line in logged)
    assert (await column_types(postgres_url, "grow"))["note"] == "text"
    assert await pg(
        postgres_url,
        "select count(*), count(note), min(id) filter (where note is not null) from grow",
    ) == [(200, 100, 100)]
    assert await pg(postgres_url, "select note from grow where id = 150") == [("late-150",)]


def model_pipeline(pages: int) -> Pipeline:
    return Pipeline(
        name="model_items",
        stages=[
            fetch_items(pages),
            Transform(
                name="shape",
                rename={"value": "amount"},
                coerce={"updated_at": "datetime"},
                compute={"meta": "{page: id}", "not_in_model": "name"},
            ),
            Store(name="save", table="model_readings", key=["id"], model=StoreReading),
        ],
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


async def model_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
            return db.execute(sql).fetchall()
    return await pg(url, sql)


async def test_a_sqlmodel_class_is_the_table(serve: Callable[..., Any], database_url: str) -> None:
    app, seen = items_app(pages=10, per_page=20)
    base = await serve(app)

    first = await run(model_pipeline(10), [api(base)], database=database_url)
    seen.generation = 2
    second = await run(model_pipeline(10), [api(base)], database=database_url)

    assert first.status == second.status == "ok", (first.run.error, second.run.error)
    assert first.run.stored == second.run.stored == 200
    assert await model_rows(database_url, "select count(*) from model_readings") == [(200,)]
    # The model's columns only: "not_in_model" is dropped (see the column lists below).
    [(name, amount, meta)] = await model_rows(
        database_url, "select name, amount, meta from model_readings where id = 123"
    )
    assert name == "item-123"
    assert Decimal(str(amount)) == Decimal("246.00")
    assert json.loads(meta) == {"page": 123}
    if database_url.startswith("postgresql"):
        found = await pg(
            database_url,
            "select column_name, data_type, character_maximum_length, numeric_precision, "
            "numeric_scale from information_schema.columns where table_name = 'model_readings'",
        )
        assert {c[0]: c[1:] for c in found} == {
            "id": ("integer", None, 32, 0),
            "name": ("character varying", 40, None, None),
            "amount": ("numeric", None, 14, 2),
            "updated_at": ("timestamp with time zone", None, None, None),
            "meta": ("json", None, None, None),
        }
        assert await pg(database_url, "select updated_at from model_readings where id = 0") == [
            (UPDATED_AT,)
        ]
    else:
        with sqlite3.connect(Path(database_url.removeprefix("sqlite:///"))) as db:
            columns = {r[1]: r[2] for r in db.execute("pragma table_info(model_readings)")}
        assert columns == {
            "id": "INTEGER",
            "name": "VARCHAR(40)",
            "amount": "NUMERIC(14, 2)",
            "updated_at": "DATETIME",
            "meta": "JSON",
        }
        assert await model_rows(
            database_url, "select updated_at from model_readings where id = 0"
        ) == [("2026-11-26 08:00:00",)]
