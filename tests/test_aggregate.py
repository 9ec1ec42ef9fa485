"""Aggregates end to end: records from two APIs merged per key, and group-by reductions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import run
from podium.pipeline import Aggregate, Fetch, Pipeline, Store

from .servers import city_app

pytestmark = pytest.mark.anyio

WEATHER = {
    "Oslo": {"temp": 2.5, "humidity": 81},
    "Lima": {"temp": 19.0, "humidity": 77},
    "Cairo": {"temp": 30.5, "humidity": 20},
    "Tokyo": {"temp": 12.0, "humidity": 55},
}
AIR = {
    "Lima": {"aqi": 42, "pm25": 11.5},
    "Cairo": {"aqi": 160, "pm25": 70.0},
    "Tokyo": {"aqi": 35, "pm25": 9.0},
    "Delhi": {"aqi": 210, "pm25": 120.5},
}


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        return db.execute(sql).fetchall()


def merge_pipeline(how: Literal["outer", "inner"], table: str = "city_conditions") -> Pipeline:
    return Pipeline(
        name=f"merge_{how}",
        stages=[
            Fetch(
                name="weather",
                connector="weather",
                for_each=sorted(WEATHER),
                as_="city",
                path="/weather/{city}",
            ),
            Fetch(
                name="air", connector="air", for_each=sorted(AIR), as_="city", path="/air/{city}"
            ),
            Aggregate(name="merge", inputs=("weather", "air"), merge_on=["city"], how=how),
            Store(name="save", table=table, key=["city"]),
        ],
    )


async def connectors(
    serve: Callable[..., Any],
    weather: dict[str, dict[str, Any]] = WEATHER,
    air: dict[str, dict[str, Any]] = AIR,
    weather_delay: float = 0.0,
) -> list[HttpConnector]:
    weather_app, _ = city_app("weather", weather, delay=weather_delay)
    air_app, _ = city_app("air", air)
    weather_base, air_base = await serve(weather_app), await serve(air_app)
    return [
        HttpConnector("weather", ConnectorConfig(kind="http", base_url=weather_base)),
        HttpConnector("air", ConnectorConfig(kind="http", base_url=air_base)),
    ]


async def test_outer_merge_stores_one_row_per_city(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    result = await run(merge_pipeline("outer"), await connectors(serve), database=sqlite_url)

    assert result.status == "ok", result.run.error
    assert result.run.stored == 5
    assert rows(
        sqlite_url,
        "select city, temp, humidity, aqi, pm25 from city_conditions order by city",
    ) == [
        ("Cairo", 30.5, 20, 160, 70.0),
        ("Delhi", None, None, 210, 120.5),
        ("Lima", 19.0, 77, 42, 11.5),
        ("Oslo", 2.5, 81, None, None),
        ("Tokyo", 12.0, 55, 35, 9.0),
    ]


async def test_inner_merge_drops_cities_missing_from_one_side(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    result = await run(merge_pipeline("inner"), await connectors(serve), database=sqlite_url)

    assert result.status == "ok", result.run.error
    assert result.run.stored == 3
    assert rows(
        sqlite_url, "select city, temp, humidity, aqi, pm25 from city_conditions order by city"
    ) == [
        ("Cairo", 30.5, 20, 160, 70.0),
        ("Lima", 19.0, 77, 42, 11.5),
        ("Tokyo", 12.0, 55, 35, 9.0),
    ]


async def test_merge_conflicts_resolve_by_input_order_not_timing(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """Merger documents "later inputs' fields win on conflicts": with inputs (weather, air),
    air's value of a shared field must win even when weather's response comes in last."""
    api = await connectors(
        serve,
        weather={c: {**v, "source": "weather"} for c, v in WEATHER.items()},
        air={c: {**v, "source": "air"} for c, v in AIR.items()},
        weather_delay=0.3,  # weather's records reach the merge last
    )
    result = await run(merge_pipeline("inner"), api, database=sqlite_url)

    assert result.status == "ok", result.run.error
    assert rows(sqlite_url, "select city, source from city_conditions order by city") == [
        ("Cairo", "air"),
        ("Lima", "air"),
        ("Tokyo", "air"),
    ]


STATIONS = {
    "oslo": {"country": "NO", "temp": 2.5},
    "bergen": {"country": "NO", "temp": 7.5},
    "tromso": {"country": "NO", "temp": None},
    "lima": {"country": "PE", "temp": 19.0},
    "cairo": {"country": "EG", "temp": 30.0},
    "luxor": {"country": "EG", "temp": 35.5},
    "aswan": {"country": "EG", "temp": 40.0},
}


async def test_group_by_metrics_are_exact(serve: Callable[..., Any], sqlite_url: str) -> None:
    app, seen = city_app("station", STATIONS)
    base = await serve(app)
    pipeline = Pipeline(
        name="by_country",
        stages=[
            Fetch(
                name="stations",
                connector="api",
                for_each=sorted(STATIONS),
                as_="city",
                path="/station/{city}",
            ),
            Aggregate(
                name="totals",
                group_by=["country"],
                metrics={
                    "stations": "count",
                    "reporting": "count:temp",
                    "total": "sum:temp",
                    "low": "min:temp",
                    "high": "max:temp",
                    "mean": "avg:temp",
                },
            ),
            Store(name="save", table="country_totals", key=["country"]),
        ],
    )
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base, concurrency=4))

    result = await run(pipeline, [api], database=sqlite_url)

    assert result.status == "ok", result.run.error
    assert seen.requests == len(STATIONS)
    assert result.run.stored == 3
    assert rows(
        sqlite_url,
        "select country, stations, reporting, total, low, high, mean "
        "from country_totals order by country",
    ) == [
        ("EG", 3, 3, 105.5, 30.0, 40.0, 105.5 / 3),
        ("NO", 3, 2, 10.0, 2.5, 7.5, 5.0),
        ("PE", 1, 1, 19.0, 19.0, 19.0, 19.0),
    ]
