"""Regressions for problems found in review: each test failed before its fix."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector, RetryPolicy
from podium.orchestrator import run
from podium.pipeline import Aggregate, Check, Fetch, Pipeline, RunPolicy, Store

from .servers import items_app

pytestmark = pytest.mark.anyio


def rows(url: str, sql: str) -> list[tuple]:
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        return db.execute(sql).fetchall()


async def test_requests_that_cannot_be_built_count_as_failed(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """A template field the input lacks (unknowable at load time) fails each request."""
    app = web.Application()

    async def ids(request: web.Request) -> web.Response:
        return web.json_response([{"id": i} for i in range(5)])

    app.router.add_get("/ids", ids)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))
    pipeline = Pipeline(
        name="typo",
        stages=[
            Fetch(name="ids", connector="api", path="/ids"),
            Fetch(name="detail", connector="api", path="/d/{idd}", **{"from": "ids"}),
            Store(name="save", table="d", key="id"),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url)
    assert result.status == "failed"
    # Never sent, so not failed: counted apart, and lost work all the same.
    assert (result.run.failed_requests, result.run.skipped_requests) == (0, 5)
    assert "0 of 6 requests failed, 5 were not sent" in (result.run.error or "")
    assert "5× template '/d/{idd}' needs {idd}" in (result.run.error or "")
    assert result.events[0].kind == "request_not_built"


async def test_client_errors_become_recorded_failures_not_tracebacks(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app = web.Application()

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(location=str(request.url))

    async def fine(request: web.Request) -> web.Response:
        return web.json_response({"id": int(request.match_info["n"])})

    app.router.add_get("/loop/{n}", loop)
    app.router.add_get("/ok/{n}", fine)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))
    pipeline = Pipeline(
        name="loops",
        policy=RunPolicy(max_failed_ratio=0.5),
        stages=[
            Fetch(name="bad", connector="api", path="/loop/{value}", for_each=[1]),
            Fetch(name="good", connector="api", path="/ok/{value}", for_each=[1, 2, 3]),
            Store(name="save", table="ok", key="id", **{"from": "good"}),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url)
    assert result.status == "partial"
    assert "more than 10 redirects" in result.events[0].message
    assert result.run.retries == 0  # a redirect loop is not retried
    assert rows(sqlite_url, "select id from ok order by id") == [(1,), (2,), (3,)]


async def test_retry_after_pauses_the_whole_connector(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """Requests already queued on a limiter when a 429 arrives wait for Retry-After too."""
    times: list[tuple[str, float]] = []
    app = web.Application()
    limited = {"done": False}

    async def handler(request: web.Request) -> web.Response:
        n = request.match_info["n"]
        times.append((n, time.monotonic()))
        if n == "0" and not limited["done"]:
            limited["done"] = True
            return web.json_response({}, status=429, headers={"Retry-After": "1"})
        return web.json_response({"id": int(n)})

    app.router.add_get("/r/{n}", handler)
    base = await serve(app)
    api = HttpConnector(
        "api",
        ConnectorConfig(kind="http", base_url=base, concurrency=4, retry=RetryPolicy(backoff=0.01)),
    )
    pipeline = Pipeline(
        name="paused",
        stages=[
            Fetch(name="r", connector="api", path="/r/{value}", for_each=list(range(4))),
            Store(name="save", table="r", key="id"),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url, concurrency=1)
    assert result.status == "ok"
    first_429 = times[0][1]
    during_pause = [n for n, at in times[1:] if at - first_429 < 0.95]
    assert during_pause == [], times
    assert rows(sqlite_url, "select count(*) from r") == [(4,)]


async def test_merge_without_from_dedupes_the_previous_stage(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app = web.Application()

    async def dupes(request: web.Request) -> web.Response:
        return web.json_response([{"id": 1, "v": "a"}, {"id": 1, "v": "b"}, {"id": 2, "v": "c"}])

    app.router.add_get("/dupes", dupes)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))
    pipeline = Pipeline(
        name="dedupe",
        stages=[
            Fetch(name="get", connector="api", path="/dupes"),
            Aggregate(name="unique", merge_on="id"),
            Store(name="save", table="u", key="id"),
            Check(name="two", on="run", expect="stages.save.out == `2`"),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert rows(sqlite_url, "select id, v from u order by id") == [(1, "b"), (2, "c")]
    assert [c.name for c in result.checks if c.ok] == ["two"]


async def test_a_locked_sqlite_file_is_waited_for_without_freezing_the_loop(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, _seen = items_app(pages=4, per_page=5)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))
    pipeline = Pipeline(
        name="locked",
        stages=[
            Fetch(
                name="items",
                connector="api",
                for_each={"range": [0, 4]},
                as_="page",
                path="/items/{page}",
                records="items",
            ),
            Store(name="save", table="items", key="id"),
        ],
    )
    assert (await run(pipeline, [api], database=sqlite_url)).status == "ok"
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    locked = threading.Event()

    def hold_lock() -> None:
        other = sqlite3.connect(path, timeout=5)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(1.5)
        other.rollback()
        other.close()

    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.monotonic()
        while True:
            await anyio.sleep(0.05)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        locked.wait(5)
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            result = await run(pipeline, [api], database=sqlite_url)
            tg.cancel_scope.cancel()
    finally:
        holder.join(10)
    assert result.status == "ok", result.run.error
    assert rows(sqlite_url, "select count(*) from items") == [(20,)]
    # The loop kept turning while the file was locked (the driver's busy wait would
    # have frozen it for the whole 1.5 s).
    assert max(gaps) < 1.0, max(gaps)
