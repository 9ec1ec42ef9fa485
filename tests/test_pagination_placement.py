"""Where the page token goes — query, header, JSON body, URL path — for every paginator
that sends one, and next links that keep a POST's method and body.

The server reads the token only where the case says it goes and refuses a request that
carries it anywhere else (400), so a token in the wrong place fails the run instead of
silently serving page one again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import run
from podium.pipeline import Fetch, Pipeline, PipelineError, Store

from .config_helpers import one_line_error

pytestmark = pytest.mark.anyio

DATA = [{"id": i, "name": f"r{i}"} for i in range(23)]
PER = 5
FILTER = {"kind": "all"}  # what a POST body asks for; every page must be asked the same


class TokenServer:
    """Pages DATA by ``style`` (cursor, page, offset), reading the token at ``where``."""

    def __init__(self, style: str, where: str, name: str) -> None:
        self.style, self.where, self.name = style, where, name
        self.tokens: list[str | None] = []

    def app(self) -> web.Application:
        app = web.Application()
        for path in ("/items", "/items/", "/items/{token}"):
            app.router.add_route("*", path, self.items)
        return app

    async def token(self, request: web.Request) -> str | None:
        body = await request.json() if request.can_read_body else None
        found = {
            "query": request.query.get(self.name),
            "header": request.headers.get(self.name),
            "body": (body or {}).get("paging", {}).get(self.name),
            "path": request.match_info.get("token"),
        }
        elsewhere = [k for k, v in found.items() if v is not None and k != self.where]
        if elsewhere:
            raise web.HTTPBadRequest(text=f"token also in {elsewhere}")
        if self.where == "body" and (body or {}).get("filter") != FILTER:
            raise web.HTTPBadRequest(text="the body lost its filter")
        value = found[self.where]
        return None if value is None else str(value)

    async def items(self, request: web.Request) -> web.Response:
        token = await self.token(request)
        self.tokens.append(token)
        if self.style == "cursor":
            start = int(token.removeprefix("c")) if token else 0
        elif self.style == "page":
            assert token is not None, "a page number comes with every page"
            start = (int(token) - 1) * PER
        else:
            assert token is not None, "an offset comes with every page"
            start = int(token)
        page = DATA[start : start + PER]
        answer: dict[str, Any] = {"items": page}
        if self.style == "cursor" and start + PER < len(DATA):
            answer["next"] = f"c{start + PER}"
        return web.json_response(answer)


def paginate_for(style: str, where: str) -> dict[str, Any]:
    name = {"cursor": "after", "page": "page", "offset": "offset"}[style]
    if style == "cursor":
        paginate: dict[str, Any] = {"type": "cursor", "path": "next", "param": name}
    elif style == "page":
        paginate = {"type": "page_number", "param": name}
    else:
        paginate = {"type": "offset", "offset_param": name, "limit": PER}
    if where == "body":
        paginate["param" if style != "offset" else "offset_param"] = f"paging.{name}"
    return {**paginate, "in": where}


async def run_fetch(
    base: str, sqlite_url: str, fetch: dict[str, Any]
) -> tuple[Any, list[tuple[Any, ...]]]:
    config = ConnectorConfig(kind="http", base_url=base)
    stage = Fetch.model_validate({"name": "items", "connector": "api", "records": "items", **fetch})
    pipeline = Pipeline(
        name="paging", stages=[stage, Store(name="save", table="items", key=["id"])]
    )
    result = await run(pipeline, [HttpConnector("api", config)], database=sqlite_url)
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        rows = db.execute("select id, name from items order by id").fetchall()
    return result, rows


@pytest.mark.parametrize("where", ["query", "header", "body", "path"])
@pytest.mark.parametrize("style", ["cursor", "page", "offset"])
async def test_each_placement_yields_exactly_the_servers_records(
    style: str, where: str, serve: Callable[..., Any], sqlite_url: str
) -> None:
    server = TokenServer(
        style, where, {"cursor": "after", "page": "page", "offset": "offset"}[style]
    )
    fetch: dict[str, Any] = {"path": "/items", "paginate": paginate_for(style, where)}
    if where == "path" and style == "page":
        del fetch["paginate"]["param"]  # the default name, "page", is the hole's
    if where == "path":
        fetch["path"] = "/items/{" + server.name + "}"
    if where == "body":
        fetch |= {"method": "POST", "body": {"filter": FILTER}}
    result, rows = await run_fetch(await serve(server.app()), sqlite_url, fetch)
    assert result.status == "ok", (result.run.error, [e.message for e in result.events])
    assert rows == [(r["id"], r["name"]) for r in DATA]
    expected = {
        "cursor": [None, "c5", "c10", "c15", "c20"],
        "page": ["1", "2", "3", "4", "5", "6"],  # an empty sixth page ends the chain
        "offset": ["0", "5", "10", "15", "20", "23"],
    }[style]
    if style == "cursor" and where == "path":
        expected = [None, *expected[1:]]  # the first page's hole is left empty: /items/
    assert server.tokens == expected


async def test_a_path_placement_without_its_hole_is_a_one_line_config_error(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url="http://127.0.0.1:9"))
    stage = Fetch.model_validate({
        "name": "items", "connector": "api", "path": "/items",
        "paginate": {"type": "page_number", "in": "path", "param": "page"},
    })  # fmt: skip
    with pytest.raises(PipelineError) as caught:
        api.check_fetch(stage)
    message = caught.value.message
    assert "\n" not in message and message.startswith("paginate:") and "{page}" in message


async def test_an_unknown_placement_names_the_key_and_the_choices() -> None:
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url="http://127.0.0.1:9"))
    stage = Fetch.model_validate({
        "name": "items", "connector": "api", "path": "/items",
        "paginate": {"type": "cursor", "path": "next", "in": "cookie"},
    })  # fmt: skip
    with pytest.raises(PipelineError) as caught:
        api.check_fetch(stage)
    message = caught.value.message
    assert "\n" not in message and "paginate.in" in message and "'body'" in message


class SearchServer:
    """A POST search that pages by next links (in the body or the Link header); each page
    must be asked with the same method and criteria."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/search", self.search)
        return app

    async def search(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.asked.append((request.method, body))
        if request.method != "POST" or body != {"filter": FILTER}:
            raise web.HTTPBadRequest(text="a next page lost the search")
        start = int(request.query.get("from", 0))
        answer: dict[str, Any] = {"items": DATA[start : start + PER]}
        headers = {}
        if start + PER < len(DATA):
            answer["next"] = f"/search?from={start + PER}"
            headers["Link"] = f'</search?from={start + PER}>; rel="next"'
        return web.json_response(answer, headers=headers)


@pytest.mark.parametrize(
    "paginate", [{"type": "next_url", "path": "next"}, {"type": "link_header"}]
)
async def test_next_links_keep_the_post_and_its_body(
    paginate: dict[str, Any], serve: Callable[..., Any], sqlite_url: str
) -> None:
    server = SearchServer()
    fetch = {"path": "/search", "method": "POST", "body": {"filter": FILTER}, "paginate": paginate}
    result, rows = await run_fetch(await serve(server.app()), sqlite_url, fetch)
    assert result.status == "ok", (result.run.error, [e.message for e in result.events])
    assert rows == [(r["id"], r["name"]) for r in DATA]
    assert server.asked == [("POST", {"filter": FILTER})] * 5


async def test_keep_body_false_sends_the_next_link_without_the_body(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    server = SearchServer()
    fetch = {
        "path": "/search", "method": "POST", "body": {"filter": FILTER},
        "paginate": {"type": "next_url", "path": "next", "keep_body": False},
    }  # fmt: skip
    result, rows = await run_fetch(await serve(server.app()), sqlite_url, fetch)
    assert rows == [(r["id"], r["name"]) for r in DATA[:PER]]  # the server refused page 2
    assert server.asked[1] == ("POST", None) and result.status != "ok"


@pytest.mark.parametrize(
    ("paginate", "words"),
    [
        ('{ type = "cursor", path = "next", in = "cookie" }', "paginate.in"),
        ('{ type = "page_number", in = "path", param = "page" }', "{page}"),
        ('{ type = "offset", total = "header:", parallel = true }', "header:X-Total"),
        ('{ type = "offset", parallel = true, stop_when = "page > `1`" }', "parallel"),
        ('{ type = "graphql_cursor", page_info = "data.x.pageInfo" }', "POST"),
        ('{ type = "graphql", page_info = "p" }', "did you mean 'graphql_cursor'"),
    ],
    ids=["placement", "path hole", "header total", "stop_when+parallel", "graphql", "type"],
)
def test_a_bad_paginate_table_is_one_line_from_the_cli(
    tmp_path: Path, paginate: str, words: str
) -> None:
    line = one_line_error(tmp_path, fetch_extra=f"paginate = {paginate}")
    assert "paginate" in line and words in line, line
