"""Concurrency limits hold exactly: per connector, and the run's global limit across them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import run
from podium.pipeline import Fetch, Pipeline, Store

from .servers import inflight_app

pytestmark = pytest.mark.anyio

# Long enough per request that every free slot is taken while others are still in flight.
DELAY = 0.02


def jobs(name: str, connector: str, count: int) -> Fetch:
    return Fetch(
        name=name, connector=connector, for_each={"range": [0, count]}, as_="n", path="/job/{n}"
    )


def client(name: str, base: str, concurrency: int) -> HttpConnector:
    return HttpConnector(
        name,
        ConnectorConfig(
            kind="http", base_url=base, concurrency=concurrency, headers={"X-Client": name}
        ),
    )


async def test_connector_concurrency_is_reached_and_never_exceeded(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    app, seen = inflight_app(DELAY)
    base = await serve(app)
    pipeline = Pipeline(
        name="limit7",
        stages=[jobs("jobs", "api", 200), Store(name="save", table="jobs", key=["id"])],
    )

    result = await run(pipeline, [client("api", base, 7)], database=sqlite_url)

    assert result.status == "ok", result.run.error
    assert seen.requests == 200
    assert result.run.stored == 200
    assert seen.max_in_flight == 7


async def test_global_limit_caps_all_connectors_together(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    app, seen = inflight_app(DELAY)
    base = await serve(app)
    pipeline = Pipeline(
        name="global12",
        stages=[
            jobs("jobs_a", "a", 150),
            jobs("jobs_b", "b", 150),
            Store(name="save", inputs=("jobs_a", "jobs_b"), table="jobs", key=["id"]),
        ],
    )

    result = await run(
        pipeline,
        [client("a", base, 10), client("b", base, 10)],
        database=sqlite_url,
        concurrency=12,
    )

    assert result.status == "ok", result.run.error
    assert seen.hits == {"a": 150, "b": 150}
    assert result.run.stored == 300
    assert seen.max_in_flight == 12
    assert set(seen.client_max_in_flight) == {"a", "b"}
    assert all(1 <= m <= 10 for m in seen.client_max_in_flight.values())


async def test_connector_limit_below_global_limit_wins(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    """Two connectors of 3 under a global 64: 6 at once, 3 each."""
    app, seen = inflight_app(DELAY)
    base = await serve(app)
    pipeline = Pipeline(
        name="two3",
        stages=[jobs("jobs_a", "a", 60), jobs("jobs_b", "b", 60)],
    )

    result = await run(pipeline, [client("a", base, 3), client("b", base, 3)], database=sqlite_url)

    assert result.status == "ok", result.run.error
    assert seen.client_max_in_flight == {"a": 3, "b": 3}
    assert seen.max_in_flight == 6
