"""A GraphQL cursor connection (Relay's ``pageInfo``) against a local handler that parses
``{query, variables}`` the way a GraphQL server does: the built-in ``graphql_cursor``
paginator, and the same API through the general ``cursor`` paginator with the cursor in
the body (the recipe in docs/connectors.md)."""

from __future__ import annotations

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

ISSUES = [{"number": n, "title": f"issue {n}"} for n in range(1, 38)]
QUERY = (
    "query($owner: String!, $first: Int!, $after: String) { repository(owner: $owner) "
    "{ issues(first: $first, after: $after) { nodes { number title } "
    "pageInfo { hasNextPage endCursor } } } }"
)


class GraphQL:
    """POST /graphql: checks the query and its variables on every page, and pages the
    issues by an opaque cursor in ``variables.after``."""

    def __init__(self, fail_on_page: int | None = None) -> None:
        self.variables: list[dict[str, Any]] = []
        self.keys: list[str | None] = []
        self.fail_on_page = fail_on_page

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/graphql", self.graphql)
        return app

    async def graphql(self, request: web.Request) -> web.Response:
        payload = await request.json()
        if set(payload) - {"query", "variables", "operationName"} or payload["query"] != QUERY:
            return web.json_response({"errors": [{"message": "bad request shape"}]})
        variables = payload["variables"]
        self.variables.append(dict(variables))
        self.keys.append(request.headers.get("Idempotency-Key"))
        if variables.get("owner") != "podium":
            return web.json_response({"errors": [{"message": "owner lost"}], "data": None})
        after = variables.get("after")
        start = int(after.removeprefix("cur:")) if after else 0
        nodes = ISSUES[start : start + variables["first"]]
        end = start + len(nodes)
        info = {"hasNextPage": end < len(ISSUES), "endCursor": f"cur:{end}" if nodes else None}
        data = {"repository": {"issues": {"nodes": nodes, "pageInfo": info}}}
        if self.fail_on_page == len(self.variables):  # a partial answer: data and errors
            return web.json_response({"data": data, "errors": [{"message": "rate limited"}]})
        return web.json_response({"data": data})


BODY = {"query": QUERY, "variables": {"owner": "podium", "first": 10}}
BUILT_IN = {"type": "graphql_cursor", "page_info": "data.repository.issues.pageInfo"}
RECIPE = {
    "type": "cursor", "in": "body", "param": "variables.after",
    "path": "data.repository.issues.pageInfo.endCursor",
    "has_more": "data.repository.issues.pageInfo.hasNextPage",
}  # fmt: skip


async def run_issues(
    base: str, sqlite_url: str, paginate: dict[str, Any], **fetch: Any
) -> tuple[Any, list[tuple[Any, ...]]]:
    stage = Fetch.model_validate({
        "name": "issues", "connector": "gh", "method": "POST", "path": "/graphql",
        "body": BODY, "records": "data.repository.issues.nodes", "paginate": paginate,
        "read_only": True, **fetch,
    })  # fmt: skip
    pipeline = Pipeline(
        name="issues",
        policy=RunPolicy(max_failed_ratio=1.0),
        stages=[stage, Store(name="save", table="issues", key=["number"])],
    )
    connector = HttpConnector("gh", ConnectorConfig(kind="http", base_url=base))
    result = await run(pipeline, [connector], database=sqlite_url)
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        stored = db.execute("select 1 from sqlite_master where name = 'issues'").fetchall()
        query = "select number, title from issues order by number"
        rows = db.execute(query).fetchall() if stored else []
    return result, rows


@pytest.mark.parametrize("paginate", [BUILT_IN, RECIPE], ids=["graphql_cursor", "recipe"])
async def test_a_graphql_connection_yields_exactly_the_servers_records(
    paginate: dict[str, Any], serve: Callable[..., Any], sqlite_url: str
) -> None:
    server = GraphQL()
    result, rows = await run_issues(await serve(server.app()), sqlite_url, paginate)
    assert result.status == "ok", (result.run.error, [e.message for e in result.events])
    assert rows == [(i["number"], i["title"]) for i in ISSUES]
    # Four pages of 10, 10, 10, 7; each kept the other variables and moved the cursor.
    assert [v.get("after") for v in server.variables] == [None, "cur:10", "cur:20", "cur:30"]
    assert all(v["owner"] == "podium" and v["first"] == 10 for v in server.variables)
    assert server.keys == [None] * 4  # a query that reads carries no Idempotency-Key


async def test_a_graphql_post_not_marked_read_only_is_a_side_effect(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """Without read_only, every page carries the same Idempotency-Key (the item's), which
    is why the recipe marks a query read_only."""
    server = GraphQL()
    result, rows = await run_issues(
        await serve(server.app()), sqlite_url, BUILT_IN, read_only=False
    )
    assert result.status == "ok" and len(rows) == len(ISSUES)
    assert len(set(server.keys)) == 1 and server.keys[0] is not None


async def test_a_graphql_error_answer_ends_the_chain_with_a_named_bad_response(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """GraphQL answers errors with status 200; a partial answer's records are kept, and
    the chain does not go on as if the connection had simply ended."""
    server = GraphQL(fail_on_page=2)
    result, rows = await run_issues(await serve(server.app()), sqlite_url, BUILT_IN)
    assert rows == [(i["number"], i["title"]) for i in ISSUES[:20]]
    assert result.status != "ok" and len(server.variables) == 2
    messages = [e.message for e in result.events if e.kind == "bad_response"]
    assert any("GraphQL answered with errors: rate limited" in m for m in messages), messages


def test_graphql_cursor_without_a_post_body_is_a_one_line_config_error() -> None:
    api = HttpConnector("gh", ConnectorConfig(kind="http", base_url="http://127.0.0.1:9"))
    stage = Fetch.model_validate(
        {"name": "issues", "connector": "gh", "path": "/graphql", "paginate": BUILT_IN}
    )
    with pytest.raises(PipelineError) as caught:
        api.check_fetch(stage)
    message = caught.value.message
    assert "\n" not in message and "graphql_cursor" in message and "POST" in message


async def test_a_graphql_error_with_no_data_is_named_not_a_missing_records_path(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """`{"errors": [...], "data": null}`: the run's cause is GraphQL's message, not "records
    path … matched nothing" (which sent users looking at their config)."""
    server = GraphQL()
    lost = {**BODY, "variables": {"owner": "nobody", "first": 10}}
    result, rows = await run_issues(await serve(server.app()), sqlite_url, BUILT_IN, body=lost)
    assert rows == [] and result.status != "ok"  # partial or failed by the policy (1.0 here)
    [event] = [e for e in result.events if e.kind == "bad_response"]
    assert "GraphQL answered with errors: owner lost" in event.message
    assert "matched nothing" not in (result.run.error or "")
