"""Every paginator yields exactly the server's records, or ends its chain with a named,
recorded error — never an ``ok`` run that silently stored part of the data.

The servers here behave like real ones that trip naive paginators: they cap page sizes
below what was asked, repeat a cursor, link back to a page, or state a total they do not
deliver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector, RetryPolicy
from podium.orchestrator import RunResult, run
from podium.pipeline import Fetch, Pipeline, RunPolicy, Store
from podium.testing import stored_rows

pytestmark = pytest.mark.anyio
RECORDS = 1000
CAP = 100  # the most any page of these servers holds, whatever was asked


def capped_app(
    *, total: int | None = RECORDS, served: int = RECORDS
) -> tuple[web.Application, list[dict[str, str]]]:
    """``/offset?offset=&limit=`` and ``/pages?page=&size=``: at most CAP records a page,
    ``served`` records in all, and the body's ``total`` (when given) states ``total``."""
    log: list[dict[str, str]] = []
    app = web.Application()

    def body(start: int, asked: int) -> dict[str, Any]:
        end = min(start + min(asked, CAP), served)
        out: dict[str, Any] = {"items": [{"id": i} for i in range(start, end)]}
        if total is not None:
            out["total"] = total
        return out

    async def offset(request: web.Request) -> web.Response:
        log.append(dict(request.query))
        return web.json_response(body(int(request.query["offset"]), int(request.query["limit"])))

    async def pages(request: web.Request) -> web.Response:
        log.append(dict(request.query))
        size = int(request.query["size"])
        return web.json_response(body((int(request.query["page"]) - 1) * min(size, CAP), size))

    app.router.add_get("/offset", offset)
    app.router.add_get("/pages", pages)
    return app, log


async def fetch_into(
    base: str, database: str, path: str, paginate: dict[str, Any], *, ratio: float = 0.5
) -> tuple[RunResult, list[Any]]:
    api = HttpConnector(
        "api",
        ConnectorConfig(kind="http", base_url=base, concurrency=8, retry=RetryPolicy(attempts=1)),
    )
    pipeline = Pipeline(
        name="audit",
        policy=RunPolicy(max_failed_ratio=ratio),
        stages=[
            Fetch(name="items", connector="api", path=path, records="items", paginate=paginate),
            Store(name="save", table="items", key="id"),
        ],
    )
    result = await run(pipeline, [api], database=database)
    ids = [row["id"] for row in await stored_rows(database, "items")] if result.run.stored else []
    return result, ids


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
@pytest.mark.parametrize("with_total", [False, True], ids=["no total", "total"])
async def test_offset_past_a_server_cap_stores_every_record(
    serve: Callable[..., Any], sqlite_url: str, with_total: bool, parallel: bool
) -> None:
    """limit = 200 against a server that answers at most 100: all 1,000, exactly once."""
    app, log = capped_app(total=RECORDS if with_total else None)
    paginate: dict[str, Any] = {"type": "offset", "limit": 200, "parallel": parallel}
    if with_total:
        paginate["total"] = "total"
    result, ids = await fetch_into(await serve(app), sqlite_url, "/offset", paginate)
    assert result.status == "ok", result.run.error
    assert ids == list(range(RECORDS))
    assert result.run.stored == RECORDS
    offsets = sorted(int(q["offset"]) for q in log)
    # Every page asked for where the last one really ended; with no total, one more
    # request finds the end (an empty page).
    assert offsets == list(range(0, RECORDS + (0 if with_total else 1), CAP))


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
async def test_page_numbers_with_a_record_total_follow_the_real_page_size(
    serve: Callable[..., Any], sqlite_url: str, parallel: bool
) -> None:
    """page_size = 200 asked, 100 served: the total is divided by 100, not 200."""
    app, _log = capped_app()
    paginate = {
        "type": "page_number",
        "total": "total",
        "page_size": 200,
        "page_size_param": "size",
        "parallel": parallel,
    }
    result, ids = await fetch_into(await serve(app), sqlite_url, "/pages", paginate)
    assert result.status == "ok", result.run.error
    assert ids == list(range(RECORDS))


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
async def test_a_total_that_is_not_reached_is_a_recorded_failure(
    serve: Callable[..., Any], sqlite_url: str, parallel: bool
) -> None:
    """The API says 1,000 and serves 600: the 600 are stored, and the run says so."""
    app, _log = capped_app(total=RECORDS, served=600)
    paginate = {"type": "offset", "limit": 100, "total": "total", "parallel": parallel}
    result, ids = await fetch_into(await serve(app), sqlite_url, "/offset", paginate, ratio=0.01)
    assert ids == list(range(600))
    assert result.status == "failed"
    assert result.run.failed_requests == 1
    [event] = [e for e in result.events if e.kind == "incomplete_pagination"]
    assert "ended after 600 of the 1000 records its total ('total') stated" in event.message
    assert "600 of the 1000 records" in (result.run.error or "")


async def test_a_cursor_that_comes_back_ends_the_chain_with_a_named_error(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    cursors = {None: "a", "a": "b", "b": "a"}  # a → b → a → … forever

    async def handler(request: web.Request) -> web.Response:
        at = request.query.get("cursor")
        n = {None: 0, "a": 1, "b": 2}[at]
        return web.json_response({"items": [{"id": n}], "next": cursors[at]})

    app = web.Application()
    app.router.add_get("/cursor", handler)
    result, ids = await fetch_into(
        await serve(app), sqlite_url, "/cursor", {"type": "cursor", "path": "next"}, ratio=0
    )
    assert ids == [0, 1, 2]
    assert result.status == "failed"
    assert any("cursor 'a' came back again" in e.message for e in result.events)


@pytest.mark.parametrize("style", ["next_url", "link_header"])
async def test_a_next_link_that_loops_ends_the_chain_with_a_named_error(
    serve: Callable[..., Any], sqlite_url: str, style: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        n = int(request.query.get("n", 0))
        target = f"/loop?n={(n + 1) % 3}"  # 0 → 1 → 2 → 0
        body: dict[str, Any] = {"items": [{"id": n}]}
        headers = {}
        if style == "next_url":
            body["next"] = target
        else:
            headers["Link"] = f'<{target}>; rel="next"'
        return web.json_response(body, headers=headers)

    app = web.Application()
    app.router.add_get("/loop", handler)
    paginate = {"type": style, "path": "next"} if style == "next_url" else {"type": style}
    result, ids = await fetch_into(await serve(app), sqlite_url, "/loop", paginate, ratio=0)
    assert ids == [0, 1, 2]
    assert result.status == "failed"
    assert any("leads back to a page already fetched" in e.message for e in result.events)


async def test_a_total_that_shrinks_midway_is_followed_not_overrun(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """Records deleted while paging: the last stated total is the one to reach."""

    async def handler(request: web.Request) -> web.Response:
        start = int(request.query["offset"])
        total = 30 if start == 0 else 25
        items = [{"id": i} for i in range(start, min(start + 10, total))]
        return web.json_response({"items": items, "total": total})

    app = web.Application()
    app.router.add_get("/shrink", handler)
    paginate = {"type": "offset", "limit": 10, "total": "total"}
    result, ids = await fetch_into(await serve(app), sqlite_url, "/shrink", paginate)
    assert result.status == "ok", result.run.error
    assert ids == list(range(25))


@pytest.mark.parametrize(
    "paginate",
    [
        {"type": "offset", "offset_param": "ofset", "limit_param": "limit", "limit": 10},
        {"type": "page_number", "param": "pge"},
    ],
    ids=["offset", "page_number"],
)
async def test_an_api_that_ignores_the_paging_parameter_ends_the_chain(
    serve: Callable[..., Any], sqlite_url: str, paginate: dict[str, Any]
) -> None:
    """A misspelt parameter: the API answers its first page to every request. Without a
    stated total the chain would follow it for ever; it ends at the first repeat, named."""
    asked: list[dict[str, str]] = []

    async def same(request: web.Request) -> web.Response:
        asked.append(dict(request.query))
        return web.json_response({"items": [{"id": i} for i in range(10)]})

    app = web.Application()
    app.router.add_get("/same", same)
    result, ids = await fetch_into(await serve(app), sqlite_url, "/same", paginate, ratio=0.1)
    assert len(asked) == 2
    assert ids == list(range(10))
    assert result.status == "failed"
    [event] = [e for e in result.events if e.kind == "bad_response"]
    assert "page 2 answered exactly what page 1 did" in event.message
