"""Totals from a response header (json-server's ``X-Total-Count``) with parallel pages,
and ``stop_when`` expressions that end a chain."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import run
from podium.pipeline import Fetch, Pipeline, PipelineError, RunPolicy, Store

pytestmark = pytest.mark.anyio

DATA = [{"id": i, "title": f"post {i}"} for i in range(47)]


class JsonServer:
    """json-server's paging: ``/posts?_page=N&_limit=M`` (or ``_start``/``_limit``), a
    bare list of records, the total in ``X-Total-Count``. ``stated`` overrides the total
    it claims (a server that has fewer than it says)."""

    def __init__(self, stated: int | None = None, delay: float = 0.05) -> None:
        self.stated = len(DATA) if stated is None else stated
        self.delay = delay
        self.in_flight = self.max_in_flight = 0
        self.asked: list[dict[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/posts", self.posts)
        return app

    async def posts(self, request: web.Request) -> web.Response:
        self.asked.append(dict(request.query))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        limit = int(request.query["_limit"])
        if "_page" in request.query:
            start = (int(request.query["_page"]) - 1) * limit
        else:
            start = int(request.query["_start"])
        page = DATA[start : start + limit]
        return web.json_response(page, headers={"X-Total-Count": str(self.stated)})


async def run_posts(
    base: str, sqlite_url: str, paginate: dict[str, Any]
) -> tuple[Any, list[tuple[Any, ...]]]:
    config = ConnectorConfig(kind="http", base_url=base)
    stage = Fetch.model_validate(
        {"name": "posts", "connector": "api", "path": "/posts", "paginate": paginate}
    )
    pipeline = Pipeline(
        name="posts",
        policy=RunPolicy(max_failed_ratio=0.01),
        stages=[stage, Store(name="save", table="posts", key=["id"])],
    )
    result = await run(pipeline, [HttpConnector("api", config)], database=sqlite_url)
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        rows = db.execute("select id, title from posts order by id").fetchall()
    return result, rows


PAGED = {
    "type": "page_number", "param": "_page", "page_size": 5, "page_size_param": "_limit",
    "total": "header:X-Total-Count", "parallel": True,
}  # fmt: skip
STARTED = {
    "type": "offset", "offset_param": "_start", "limit_param": "_limit", "limit": 5,
    "total": "header:x-total-count", "parallel": True,
}  # fmt: skip


@pytest.mark.parametrize("paginate", [PAGED, STARTED], ids=["_page", "_start"])
async def test_a_header_total_pages_in_parallel_to_exactly_the_servers_records(
    paginate: dict[str, Any], serve: Callable[..., Any], sqlite_url: str
) -> None:
    server = JsonServer()
    result, rows = await run_posts(await serve(server.app()), sqlite_url, paginate)
    assert result.status == "ok", (result.run.error, [e.message for e in result.events])
    assert rows == [(r["id"], r["title"]) for r in DATA]
    assert len(server.asked) == 10  # 47 records in pages of 5: no page asked twice
    # Pages 2..10 were known from the first page's header and really went together.
    assert server.max_in_flight >= 2


@pytest.mark.parametrize("paginate", [PAGED, STARTED], ids=["_page", "_start"])
async def test_a_header_total_the_server_falls_short_of_is_reported(
    paginate: dict[str, Any], serve: Callable[..., Any], sqlite_url: str
) -> None:
    server = JsonServer(stated=60)  # claims 60, has 47
    result, rows = await run_posts(await serve(server.app()), sqlite_url, paginate)
    assert rows == [(r["id"], r["title"]) for r in DATA]
    assert result.status == "failed"
    [event] = [e for e in result.events if e.kind == "incomplete_pagination"]
    assert "ended after 47 of the 60 records its total ('header:" in event.message


async def test_a_total_header_that_is_not_a_number_is_a_bad_response(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app = web.Application()

    async def posts(request: web.Request) -> web.Response:
        return web.json_response(DATA[:5], headers={"X-Total-Count": "many"})

    app.router.add_get("/posts", posts)
    result, rows = await run_posts(await serve(app), sqlite_url, PAGED)
    assert len(rows) == 5
    [event] = [e for e in result.events if e.kind == "bad_response"]
    assert "'header:X-Total-Count' gave 'many'" in event.message


def test_a_header_total_without_a_name_is_a_one_line_config_error() -> None:
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url="http://127.0.0.1:9"))
    stage = Fetch.model_validate({
        "name": "posts", "connector": "api", "path": "/posts",
        "paginate": {**PAGED, "total": "header:"},
    })  # fmt: skip
    with pytest.raises(PipelineError) as caught:
        api.check_fetch(stage)
    message = caught.value.message
    assert "\n" not in message and message.startswith("paginate.total:")
    assert "header:X-Total-Count" in message


class Feed:
    """An endless feed that says in its body and headers where it is."""

    def __init__(self) -> None:
        self.pages: list[int] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/feed", self.feed)
        return app

    async def feed(self, request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        self.pages.append(page)
        items = [{"id": page * 10 + i, "day": f"2026-11-{page:02d}"} for i in range(3)]
        body = {"items": items, "meta": {"current": page, "last": 4}}
        return web.json_response(body, headers={"X-Page-State": "last" if page == 6 else "more"})


@pytest.mark.parametrize(
    ("stop_when", "pages"),
    [
        ("body.meta.current == body.meta.last", [1, 2, 3, 4]),
        ("headers.\"x-page-state\" == 'last'", [1, 2, 3, 4, 5, 6]),
        ("page >= `2`", [1, 2]),
        ("records[?day == '2026-11-03']", [1, 2, 3]),
        ("status == `200`", [1]),
        ("expr: page * 3 >= 6", [1, 2]),
    ],
    ids=["body", "header", "page", "records", "status", "arithmetic"],
)
async def test_stop_when_ends_the_chain_where_the_expression_says(
    stop_when: str, pages: list[int], serve: Callable[..., Any], sqlite_url: str
) -> None:
    feed = Feed()
    config = ConnectorConfig(kind="http", base_url=await serve(feed.app()))
    stage = Fetch.model_validate({
        "name": "feed", "connector": "api", "path": "/feed", "records": "items",
        "paginate": {"type": "page_number", "stop_when": stop_when, "max_pages": 20},
    })  # fmt: skip
    pipeline = Pipeline(name="feed", stages=[stage, Store(name="s", table="feed", key=["id"])])
    result = await run(pipeline, [HttpConnector("api", config)], database=sqlite_url)
    assert result.status == "ok", (result.run.error, [e.message for e in result.events])
    assert feed.pages == pages
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        ids = [r[0] for r in db.execute("select id from feed order by id")]
    assert ids == [p * 10 + i for p in pages for i in range(3)]


@pytest.mark.parametrize(
    ("paginate", "words"),
    [
        ({"type": "cursor", "path": "next", "stop_when": "body.("}, "paginate.stop_when"),
        ({**PAGED, "stop_when": "page > `1`"}, "parallel"),
    ],
    ids=["bad expression", "with parallel"],
)
def test_a_bad_stop_when_is_a_one_line_config_error(paginate: dict[str, Any], words: str) -> None:
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url="http://127.0.0.1:9"))
    stage = Fetch.model_validate(
        {"name": "posts", "connector": "api", "path": "/posts", "paginate": paginate}
    )
    with pytest.raises(PipelineError) as caught:
        api.check_fetch(stage)
    message = caught.value.message
    assert "\n" not in message and message.startswith("paginate") and words in message


@pytest.mark.parametrize("paginate", [PAGED, STARTED], ids=["_page", "_start"])
async def test_a_parallel_set_stops_at_the_first_empty_page_of_a_lying_total(
    paginate: dict[str, Any], serve: Callable[..., Any], sqlite_url: str
) -> None:
    """It claims 2,000 records and has 47: the set stops asking after an empty page (it
    sent all 400 pages), and the run says it holds 47 of 2,000."""
    server = JsonServer(stated=2000, delay=0.01)
    result, rows = await run_posts(await serve(server.app()), sqlite_url, paginate)
    assert rows == [(r["id"], r["title"]) for r in DATA]
    assert len(server.asked) <= 10 + 64  # the pages with data, and those already in flight
    assert result.status == "failed"
    [event] = [e for e in result.events if e.kind == "incomplete_pagination"]
    assert "47 of the 2000 records" in event.message


async def test_a_chain_broken_midway_counts_the_pages_it_could_not_fetch(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """Ten pages stated, page 4 fails for good: 7 pages are lost, not "1 of 4 requests"
    (which a policy of 0.5 let pass as partial)."""
    app = web.Application()

    async def posts(request: web.Request) -> web.Response:
        page = int(request.query["_page"])
        if page == 4:
            return web.json_response({"error": "down"}, status=500)
        return web.json_response({"items": [{"id": page}], "pages": 10})

    app.router.add_get("/posts", posts)
    config = ConnectorConfig(kind="http", base_url=await serve(app), retry={"attempts": 1})
    stage = Fetch.model_validate({
        "name": "posts", "connector": "api", "path": "/posts", "records": "items",
        "paginate": {"type": "page_number", "param": "_page", "total_pages": "pages"},
    })  # fmt: skip
    pipeline = Pipeline(
        name="posts",
        policy=RunPolicy(max_failed_ratio=0.5),
        stages=[stage, Store(name="save", table="posts", key=["id"])],
    )
    result = await run(pipeline, [HttpConnector("api", config)], database=sqlite_url)
    assert result.run.stored == 3
    assert (result.run.failed_requests, result.run.skipped_requests) == (1, 6)
    assert result.status == "failed", result.run.error
