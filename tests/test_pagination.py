"""Every pagination style against a local server that pages the same 23 records its way.

Each case runs a real pipeline (fetch → store into SQLite) and checks that exactly the
server's records were stored and exactly the expected requests were made: a paginator
that stops early loses records, one that stops late costs a request (or loops).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors import ConnectorConfig, HttpConnector
from orchestrator import run
from pipeline import Fetch, Pipeline, Store

from .servers import Seen

pytestmark = pytest.mark.anyio

DATA = [{"id": i, "name": f"r{i}"} for i in range(23)]
PER = 5  # 23 records: pages of 5, 5, 5, 5, 3


def paging_app(delay: float = 0.0) -> tuple[web.Application, Seen]:
    """One app, one path per style; ``seen.log`` records each request's path and query."""
    seen = Seen()
    app = web.Application()

    async def observe(request: web.Request) -> None:
        seen.requests += 1
        seen.log.append({"path": request.path, **request.query})
        seen.in_flight += 1
        seen.max_in_flight = max(seen.max_in_flight, seen.in_flight)
        try:
            await asyncio.sleep(delay)
        finally:
            seen.in_flight -= 1

    def page_of(number: int) -> list[dict[str, Any]]:
        return DATA[(number - 1) * PER : number * PER]

    async def pages(request: web.Request) -> web.Response:
        # The totals are stated on the first page only, as many APIs do.
        await observe(request)
        number = int(request.query.get("page", "1"))
        body: dict[str, Any] = {"items": page_of(number), "has_more": number * PER < len(DATA)}
        if number == 1:
            body["total_pages"] = -(-len(DATA) // PER)
            body["total"] = len(DATA)
        return web.json_response(body)

    async def offset(request: web.Request) -> web.Response:
        await observe(request)
        start, limit = int(request.query["offset"]), int(request.query["limit"])
        body: dict[str, Any] = {"items": DATA[start : start + limit]}
        if start == 0:
            body["total"] = len(DATA)
        return web.json_response(body)

    async def cursor(request: web.Request) -> web.Response:
        await observe(request)
        start = int(request.query.get("cursor", "0"))
        end = start + PER
        return web.json_response(
            {"items": DATA[start:end], "next_cursor": str(end) if end < len(DATA) else None}
        )

    def next_link(request: web.Request, number: int) -> str | None:
        if number * PER >= len(DATA):
            return None
        if request.query.get("style") == "relative":
            return f"{request.path}?style=relative&page={number + 1}"
        return str(request.url.with_query(style="absolute", page=str(number + 1)))

    async def next_url(request: web.Request) -> web.Response:
        await observe(request)
        number = int(request.query.get("page", "1"))
        return web.json_response({"items": page_of(number), "next": next_link(request, number)})

    async def link(request: web.Request) -> web.Response:
        await observe(request)
        number = int(request.query.get("page", "1"))
        nxt = next_link(request, number)
        headers = {"Link": f'<{nxt}>; rel="next", </first>; rel="first"'} if nxt else {}
        return web.json_response({"items": page_of(number)}, headers=headers)

    for path, handler in [
        ("/pages", pages),
        ("/offset", offset),
        ("/cursor", cursor),
        ("/next", next_url),
        ("/link", link),
    ]:
        app.router.add_get(path, handler)
    return app, seen


async def fetch_all(
    serve: Callable[..., Any],
    sqlite_url: str,
    path: str,
    paginate: dict[str, Any],
    *,
    params: dict[str, Any] | None = None,
    delay: float = 0.0,
) -> tuple[list[int], Seen]:
    app, seen = paging_app(delay)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base, concurrency=4))
    pipeline = Pipeline(
        name="paging",
        stages=[
            Fetch(
                name="items",
                connector="api",
                path=path,
                params=params or {},
                records="items",
                paginate=paginate,
            ),
            Store(name="save", table="items", key=["id"]),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        ids = [row[0] for row in db.execute("select id from items order by id")]
    assert result.run.stored == len(ids)
    return ids, seen


ALL = list(range(23))

CASES = {
    # name: (path, paginate, params, expected ids, expected requests)
    "page_number, empty last page": ("/pages", {"type": "page_number"}, None, ALL, 6),
    "page_number, total_pages on the first page only": (
        "/pages",
        {"type": "page_number", "total_pages": "total_pages"},
        None,
        ALL,
        5,
    ),
    "page_number, total records on the first page only": (
        "/pages",
        {"type": "page_number", "total": "total", "page_size": PER},
        None,
        ALL,
        5,
    ),
    "page_number, has_more false": (
        "/pages",
        {"type": "page_number", "has_more": "has_more"},
        None,
        ALL,
        5,
    ),
    "page_number, max_pages": (
        "/pages",
        {"type": "page_number", "max_pages": 2},
        None,
        ALL[:10],
        2,
    ),
    "offset, short last page": ("/offset", {"type": "offset", "limit": PER}, None, ALL, 5),
    "offset, total on the first page only": (
        "/offset",
        {"type": "offset", "limit": 4, "total": "total"},
        None,
        ALL,
        6,
    ),
    "cursor from a JSON path": (
        "/cursor",
        {"type": "cursor", "path": "next_cursor", "param": "cursor"},
        None,
        ALL,
        5,
    ),
    "next URL, absolute": (
        "/next",
        {"type": "next_url", "path": "next"},
        {"style": "absolute"},
        ALL,
        5,
    ),
    "next URL, relative": (
        "/next",
        {"type": "next_url", "path": "next"},
        {"style": "relative"},
        ALL,
        5,
    ),
    "Link header, absolute": ("/link", {"type": "link_header"}, {"style": "absolute"}, ALL, 5),
    "Link header, relative": ("/link", {"type": "link_header"}, {"style": "relative"}, ALL, 5),
    "Link header, max_pages": (
        "/link",
        {"type": "link_header", "max_pages": 3},
        {"style": "relative"},
        ALL[:15],
        3,
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
async def test_each_style_yields_exactly_the_servers_records(
    case: str, serve: Callable[..., Any], sqlite_url: str
) -> None:
    path, paginate, params, expected, requests = CASES[case]
    ids, seen = await fetch_all(serve, sqlite_url, path, paginate, params=params)
    assert ids == expected
    assert seen.requests == requests, seen.log


async def test_relative_links_keep_their_own_query(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """A next URL replaces the first request's parameters instead of merging with them."""
    _ids, seen = await fetch_all(
        serve,
        sqlite_url,
        "/next",
        {"type": "next_url", "path": "next"},
        params={"style": "relative"},
    )
    assert [entry.get("page") for entry in seen.log] == [None, "2", "3", "4", "5"]
    assert all(entry["style"] == "relative" for entry in seen.log)


@pytest.mark.parametrize(
    ("path", "paginate", "requests"),
    [
        ("/pages", {"type": "page_number", "total_pages": "total_pages", "parallel": True}, 5),
        ("/pages", {"type": "page_number", "total": "total", "page_size": 5, "parallel": True}, 5),
        ("/offset", {"type": "offset", "limit": 4, "total": "total", "parallel": True}, 6),
    ],
    ids=["page_number", "page_number, total records", "offset"],
)
async def test_known_totals_fetch_the_rest_concurrently(
    path: str,
    paginate: dict[str, Any],
    requests: int,
    serve: Callable[..., Any],
    sqlite_url: str,
) -> None:
    ids, seen = await fetch_all(serve, sqlite_url, path, paginate, delay=0.05)
    assert ids == ALL
    assert seen.requests == requests
    # The first page is alone (it tells the total); the rest overlap, up to the
    # connector's concurrency of 4.
    assert seen.max_in_flight == min(4, requests - 1)


async def test_parallel_pages_respect_max_pages(serve: Callable[..., Any], sqlite_url: str) -> None:
    paginate = {
        "type": "page_number",
        "total_pages": "total_pages",
        "parallel": True,
        "max_pages": 3,
    }
    ids, seen = await fetch_all(serve, sqlite_url, "/pages", paginate)
    assert ids == ALL[:15]
    assert sorted(entry["page"] for entry in seen.log) == ["1", "2", "3"]


async def test_parallel_without_a_total_goes_page_by_page(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """No total on the first page: nothing to fan out, the chain stays sequential."""
    ids, seen = await fetch_all(
        serve, sqlite_url, "/pages", {"type": "page_number", "parallel": True}, delay=0.02
    )
    assert ids == ALL
    assert seen.requests == 6
    assert seen.max_in_flight == 1


async def test_cursor_chains_stay_sequential(serve: Callable[..., Any], sqlite_url: str) -> None:
    ids, seen = await fetch_all(
        serve, sqlite_url, "/cursor", {"type": "cursor", "path": "next_cursor"}, delay=0.02
    )
    assert ids == ALL
    assert seen.max_in_flight == 1
    assert [entry.get("cursor") for entry in seen.log] == [None, "5", "10", "15", "20"]


def test_a_bad_paginate_table_names_the_key_and_the_types() -> None:
    api = HttpConnector("api", ConnectorConfig(kind="http"))
    fetch = Fetch(name="items", connector="api", paginate={"type": "page_number", "total": "total"})
    with pytest.raises(Exception, match="'total' counts records: give 'page_size'") as info:
        api.check_fetch(fetch)
    assert "types: none, next_url, link_header, page_number, offset, cursor" in str(info.value)
