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

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import run
from podium.pipeline import Fetch, Pipeline, RunPolicy, Store

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
    # A short page may be a server's cap, not the end: without a total, the chain goes on
    # to an empty page (one request more) unless stop_on_short says pages are never capped.
    "offset, short last page": ("/offset", {"type": "offset", "limit": PER}, None, ALL, 6),
    "offset, stop_on_short": (
        "/offset",
        {"type": "offset", "limit": PER, "stop_on_short": True},
        None,
        ALL,
        5,
    ),
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


def test_a_bad_paginate_table_names_the_key_and_the_types_only_for_a_bad_type() -> None:
    api = HttpConnector("api", ConnectorConfig(kind="http"))
    paginate = {"type": "page_number", "total": "total", "total_pages": "pages"}
    fetch = Fetch(name="items", connector="api", paginate=paginate)
    with pytest.raises(Exception, match="give 'total_pages' or 'total'") as info:
        api.check_fetch(fetch)
    assert "types:" not in str(info.value)  # the type is right: no list to send one astray
    wrong = Fetch(name="items", connector="api", paginate={"type": "page_numbr"})
    with pytest.raises(Exception, match="did you mean 'page_number'") as info:
        api.check_fetch(wrong)
    assert "types: none, next_url, link_header, page_number, offset, cursor" in str(info.value)


# -- an API that answers something a paginator cannot use --------------------------------


async def run_paging(
    base: str,
    sqlite_url: str,
    paginate: dict[str, Any],
    *,
    path: str = "/items",
    records: str | None = "items",
    carry: dict[str, str] | None = None,
    for_each: dict[str, Any] | None = None,
    auth: dict[str, Any] | None = None,
) -> tuple[Any, list[tuple[Any, ...]]]:
    """Run fetch → store with a ratio policy that lets a failed request leave the run
    partial; returns the result and the stored rows."""
    config = ConnectorConfig(kind="http", base_url=base, auth=auth)
    fan_out: dict[str, Any] = {"for_each": for_each, "as": "page"} if for_each else {}
    pipeline = Pipeline(
        name="paging",
        policy=RunPolicy(max_failed_ratio=1.0),
        stages=[
            Fetch(
                name="items",
                connector="api",
                path=path,
                records=records,
                paginate=paginate,
                carry=carry or {},
                **fan_out,
            ),
            Store(name="save", table="items", key=["page", "value"] if carry else ["id"]),
        ],
    )
    result = await run(pipeline, [HttpConnector("api", config)], database=sqlite_url)
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        table = "page, value" if carry else "id"
        rows = db.execute(f"select {table} from items order by {table}").fetchall()
    return result, rows


def stated_total_app(field: str, value: Any) -> web.Application:
    """Pages of 5 records whose first page states ``field`` as ``value``."""
    app = web.Application()

    async def items(request: web.Request) -> web.Response:
        start = int(request.query.get("offset", 0))
        if "page" in request.query:
            start = (int(request.query["page"]) - 1) * PER
        body: dict[str, Any] = {"items": DATA[start : start + PER], field: value}
        return web.json_response(body)

    app.router.add_get("/items", items)
    return app


@pytest.mark.parametrize(
    ("paginate", "field", "value"),
    [
        ({"type": "page_number", "total_pages": "pages"}, "pages", "lots"),
        ({"type": "page_number", "total": "total", "page_size": PER}, "total", "n/a"),
        ({"type": "page_number", "total_pages": "total_pages"}, "total_pages", 2.5),
        ({"type": "offset", "limit": PER, "total": "total"}, "total", {"count": 23}),
        ({"type": "offset", "limit": PER, "total": "total"}, "total", True),
        ({"type": "offset", "limit": PER, "total": "total"}, "total", -1),
    ],
    ids=["total_pages text", "total text", "fraction", "object", "boolean", "negative"],
)
async def test_a_total_that_is_not_a_number_is_a_bad_response(
    paginate: dict[str, Any], field: str, value: Any, serve: Callable[..., Any], sqlite_url: str
) -> None:
    """Not an internal error with a traceback: the first page's records are kept, the
    chain ends with a bad_response event naming the expression and the value, and the
    run goes on to be judged by its policy."""
    result, rows = await run_paging(
        await serve(stated_total_app(field, value)), sqlite_url, paginate
    )
    assert result.status == "partial", result.run.error
    assert rows == [(i,) for i in range(PER)]
    assert [e.kind for e in result.events] == ["bad_response"]
    expression = paginate.get("total_pages") or paginate["total"]
    assert f"paginate expression {expression!r} gave {value!r}" in result.events[0].message
    assert "not a whole number" in result.events[0].message


async def test_numeric_text_and_whole_floats_still_count(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    for paginate, field, value in [
        ({"type": "page_number", "total_pages": "total_pages"}, "total_pages", " 5 "),
        ({"type": "offset", "limit": PER, "total": "total"}, "total", 23.0),
    ]:
        result, rows = await run_paging(
            await serve(stated_total_app(field, value)), sqlite_url, paginate
        )
        assert result.status == "ok", result.run.error
        assert result.events == []
        assert rows == [(i,) for i in range(23)]


# -- records: every item of a list is handled the same way --------------------------------


async def test_non_object_items_anywhere_in_a_list_become_value_records(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """``[{...}, 5]`` used to pass the first-item check and break ``carry`` later."""
    app = web.Application()

    async def mixed(request: web.Request) -> web.Response:
        return web.json_response([{"value": 1}, 2, {"value": 3}, 4])

    app.router.add_get("/mixed/{page}", mixed)
    result, rows = await run_paging(
        await serve(app),
        sqlite_url,
        {"type": "none"},
        path="/mixed/{page}",
        records=None,
        carry={"page": "page"},
        for_each={"range": [0, 2]},
    )
    assert result.status == "ok", result.run.error
    assert result.events == []
    assert rows == [(page, value) for page in (0, 1) for value in (1, 2, 3, 4)]


# -- next links stay on the origin they came from -----------------------------------------

TOKEN = "paging-secret-token"


def linking_app(other: str, style: str) -> tuple[web.Application, Seen]:
    """Page 1 here links page 2 at ``other`` (in the body and in a Link header)."""
    seen = Seen()
    app = web.Application()

    async def items(request: web.Request) -> web.Response:
        seen.requests += 1
        seen.log.append({"path": request.path, "auth": request.headers.get("Authorization")})
        page = int(request.query.get("page", "1"))
        if page > 1:
            return web.json_response({"items": DATA[PER : 2 * PER], "next": None})
        link = f"{other}/items?page=2"
        headers = {"Link": f'<{link}>; rel="next"'} if style == "link_header" else {}
        return web.json_response({"items": DATA[:PER], "next": link}, headers=headers)

    app.router.add_get("/items", items)
    return app, seen


def paginate_style(style: str, **extra: Any) -> dict[str, Any]:
    base = {"type": "next_url", "path": "next"} if style == "next_url" else {"type": style}
    return {**base, **extra}


@pytest.mark.parametrize("style", ["next_url", "link_header"])
async def test_a_next_link_to_another_origin_is_refused(
    style: str, serve: Callable[..., Any], sqlite_url: str
) -> None:
    """The session's Authorization header would go with the request: it never leaves."""
    elsewhere, elsewhere_seen = linking_app("unused", style)
    other = await serve(elsewhere)  # the same host on another port: another origin
    app, seen = linking_app(other, style)
    here = await serve(app)
    result, rows = await run_paging(
        here,
        sqlite_url,
        paginate_style(style),
        auth={"type": "bearer", "token": TOKEN},
    )
    assert elsewhere_seen.requests == 0
    assert seen.log == [{"path": "/items", "auth": f"Bearer {TOKEN}"}]
    assert rows == [(i,) for i in range(PER)]
    assert result.status == "partial"
    [event] = result.events
    assert event.kind == "bad_response"
    assert f"next page link goes to {other}, another origin than the response's {here};" in (
        event.message
    )
    assert "allow_other_hosts = true" in event.message
    assert TOKEN not in event.message


@pytest.mark.parametrize("style", ["next_url", "link_header"])
async def test_allow_other_hosts_follows_a_link_to_another_origin(
    style: str, serve: Callable[..., Any], sqlite_url: str
) -> None:
    elsewhere, elsewhere_seen = linking_app("unused", style)
    other = await serve(elsewhere)
    app, seen = linking_app(other, style)
    here = await serve(app)
    result, rows = await run_paging(
        here,
        sqlite_url,
        paginate_style(style, allow_other_hosts=True),
        auth={"type": "bearer", "token": TOKEN},
    )
    assert result.status == "ok", result.run.error
    assert result.events == []
    assert seen.requests == 1
    assert elsewhere_seen.log == [{"path": "/items", "auth": f"Bearer {TOKEN}"}]
    assert rows == [(i,) for i in range(2 * PER)]


async def test_a_non_http_next_link_is_refused_even_when_other_hosts_are_allowed(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, seen = linking_app("file:///etc", "next_url")
    result, rows = await run_paging(
        await serve(app), sqlite_url, paginate_style("next_url", allow_other_hosts=True)
    )
    assert seen.requests == 1
    assert rows == [(i,) for i in range(PER)]
    [event] = result.events
    assert event.kind == "bad_response"
    assert "next page link 'file:///etc/items?page=2' is not an http(s) URL" in event.message


def test_allow_other_hosts_is_only_for_paginators_that_follow_links() -> None:
    api = HttpConnector("api", ConnectorConfig(kind="http"))
    fetch = Fetch(
        name="items",
        connector="api",
        paginate={"type": "cursor", "path": "next", "allow_other_hosts": True},
    )
    with pytest.raises(Exception, match="allow_other_hosts"):
        api.check_fetch(fetch)
