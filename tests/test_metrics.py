"""Request metrics: the gateway's latency histograms and error counters — against real
servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector, RetryPolicy
from podium.orchestrator import run
from podium.orchestrator.http import LATENCY_BUCKETS
from podium.pipeline import Fetch, Pipeline

from .daemon_helpers import free_port
from .servers import Seen, slow_app, status_app

pytestmark = pytest.mark.anyio


def timed_app(delay: float) -> tuple[web.Application, Seen]:
    """``/items/{n}`` answers after ``delay``; ``/moved/{n}`` redirects there at once.
    ``seen.requests`` counts every exchange, redirects included."""
    seen = Seen()
    app = web.Application()

    async def items(request: web.Request) -> web.Response:
        seen.requests += 1
        await asyncio.sleep(delay)
        return web.json_response({"items": [{"id": int(request.match_info["n"])}]})

    async def moved(request: web.Request) -> web.Response:
        seen.requests += 1
        raise web.HTTPFound(f"/items/{request.match_info['n']}")

    app.router.add_get("/items/{n}", items)
    app.router.add_get("/moved/{n}", moved)
    return app, seen


def connector(base: str, *, attempts: int = 1, timeout: float = 10.0) -> HttpConnector:
    retry = RetryPolicy(attempts=attempts, backoff=0.01, max_backoff=0.02)
    config = ConnectorConfig(kind="http", base_url=base, retry=retry, timeout=timeout)
    return HttpConnector("api", config)


def fetching(path: str, items: list[dict[str, Any]]) -> Pipeline:
    """One request per item, to ``path`` filled in with it."""
    return Pipeline(
        name="p",
        stages=[Fetch(name="get", connector="api", for_each=items, path=path, records="items")],
    )


# -- the engine ---------------------------------------------------------------------------------
async def test_the_histogram_counts_every_exchange_the_server_saw(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, seen = timed_app(delay=0.03)
    api = connector(await serve(app))
    # 4 direct, 3 through a redirect: 10 exchanges, each at least 30 ms or a redirect.
    items = [{"route": "items" if n < 4 else "moved", "n": n} for n in range(7)]
    result = await run(fetching("/{route}/{n}", items), [api], database=sqlite_url)
    assert result.status == "ok"
    assert seen.requests == 10
    stats = result.stats.connectors["api"]
    assert len(stats.latency) == len(LATENCY_BUCKETS) + 1
    assert sum(stats.latency) == stats.requests == 10
    # Only the 3 redirects can have been faster than 25 ms; every answer took 30 ms or more.
    fast = sum(stats.latency[: LATENCY_BUCKETS.index(0.025) + 1])
    assert fast <= 3 and sum(stats.latency) - fast >= 7
    assert stats.seconds >= 7 * 0.03
    assert not stats.errors


@pytest.mark.parametrize(
    ("case", "kind", "attempts", "server_saw"),
    [
        ("refused", "connection", 2, 0),
        ("timeout", "timeout", 2, 2),
        ("503", "status_5xx", 2, 2),  # retried: the policy's statuses include 503
        ("404", "status_4xx", 1, 1),  # final at once
    ],
)
async def test_errors_are_counted_per_attempt_by_kind(
    serve: Callable[..., Any],
    sqlite_url: str,
    case: str,
    kind: str,
    attempts: int,
    server_saw: int,
) -> None:
    seen, timeout = Seen(), 10.0
    if case == "refused":
        base, path = f"http://127.0.0.1:{free_port()}", "/items/{n}"
    elif case == "timeout":
        app, seen = slow_app(delay=5)  # far longer than the connector's timeout
        base, path, timeout = await serve(app), "/slow/{n}", 0.3
    else:
        app, seen = status_app()
        base, path = await serve(app), f"/status/{case}/{{n}}"
    api = connector(base, attempts=2, timeout=timeout)
    result = await run(fetching(path, [{"n": 1}]), [api], database=sqlite_url)
    assert result.status == "failed"  # its one request failed for good
    assert seen.requests == server_saw
    stats = result.stats.connectors["api"]
    assert dict(stats.errors) == {kind: attempts}
    assert sum(stats.latency) == (attempts if case in ("503", "404") else 0)  # answered
