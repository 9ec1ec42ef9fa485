"""How runs end: failed checks, a raising callable, a timeout — each recorded, data kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import run
from podium.pipeline import Check, Fetch, Pipeline, RunPolicy, Store, Transform

from .servers import items_app

pytestmark = pytest.mark.anyio


def pages(n: int, **kw: object) -> Fetch:
    return Fetch(
        name="items",
        connector="api",
        for_each={"range": [0, n]},
        as_="page",
        path="/items/{page}",
        records="items",
        **kw,
    )


def db_rows(url: str, sql: str) -> list[tuple]:
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        return db.execute(sql).fetchall()


async def api(serve: Callable[..., object], pages_: int = 10, **kw: object) -> HttpConnector:
    app, _seen = items_app(pages=pages_, per_page=5, **kw)
    base = await serve(app)
    return HttpConnector("api", ConnectorConfig(kind="http", base_url=base, concurrency=4))


async def test_checks_on_records_responses_and_the_run(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    connector = await api(serve)
    pipeline = Pipeline(
        name="checked",
        stages=[
            pages(10),
            Check(name="fast_ok", on="responses", expect="status == `200` && elapsed_ms < `5000`"),
            Check(name="small_ids", **{"from": "items"}, expect="id < `40`", severity="warn",
                  drop=True),
            Store(name="save", table="items", key="id"),
            Check(name="enough", on="run",
                  expect="stages.save.out >= `40`"),
        ],
    )  # fmt: skip
    result = await run(pipeline, [connector], database=sqlite_url)
    by_name = {c.name: c for c in result.checks}
    assert (by_name["fast_ok"].passed, by_name["fast_ok"].failed) == (10, 0)
    assert (by_name["small_ids"].passed, by_name["small_ids"].failed) == (40, 10)
    assert by_name["small_ids"].samples[0]["id"] >= 40
    assert by_name["enough"].ok
    assert result.status == "partial"  # a warn check failed; nothing failed hard
    assert db_rows(sqlite_url, "select count(*), max(id) from items") == [(40, 39)]
    stored = db_rows(sqlite_url, "select name, passed, failed, ok from podium_check_results")
    assert sorted(stored) == [("enough", 1, 0, 1), ("fast_ok", 10, 0, 1), ("small_ids", 40, 10, 0)]


async def test_an_error_check_fails_the_run_but_keeps_the_rows(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    connector = await api(serve)
    pipeline = Pipeline(
        name="strict",
        stages=[
            pages(10),
            Check(name="positive", expect="value > `0`"),
            Store(name="save", table="items", key="id"),
        ],
    )
    result = await run(pipeline, [connector], database=sqlite_url)
    assert result.status == "failed"
    assert result.run.error == "checks failed: positive (1 of 50)"
    assert db_rows(sqlite_url, "select count(*) from items") == [(50,)]


async def test_a_raising_callable_fails_the_run_in_one_line_and_keeps_stored_batches(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    connector = await api(serve, pages_=40)
    seen = 0

    def explode_late(record: dict) -> dict:
        nonlocal seen
        seen += 1
        if seen > 150:
            raise KeyError("price")
        return record

    pipeline = Pipeline(
        name="boom",
        stages=[
            pages(40),
            explode_late,
            Store(name="save", table="items", key="id", batch_size=50),
        ],
    )
    result = await run(pipeline, [connector], database=sqlite_url)
    assert result.status == "failed"
    assert result.run.error is not None
    assert "\n" not in result.run.error
    assert "transform 'explode_late'" in result.run.error and "KeyError" in result.run.error
    stored = db_rows(sqlite_url, "select count(*) from items")[0][0]
    assert 50 <= stored <= 150 and stored % 50 == 0  # whole batches, never a partial one
    assert db_rows(sqlite_url, "select status, stored from podium_runs") == [("failed", stored)]


async def test_run_timeout_is_recorded_as_timed_out(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    connector = await api(serve, pages_=100, delay=0.2)
    pipeline = Pipeline(
        name="slow", timeout=0.5, stages=[pages(100), Store(name="save", table="items", key="id")]
    )
    with anyio.fail_after(10):
        result = await run(pipeline, [connector], database=sqlite_url)
    assert result.status == "timed_out"
    assert db_rows(sqlite_url, "select status from podium_runs") == [("timed_out",)]


async def test_failed_requests_within_policy_make_the_run_partial(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    connector = await api(serve, pages_=19)  # page 19 answers 404
    for ratio, expected in ((0.1, "partial"), (0.01, "failed")):
        pipeline = Pipeline(
            name=f"policy{expected}",
            policy=RunPolicy(max_failed_ratio=ratio),
            stages=[pages(20), Store(name="save", table="items", key="id")],
        )
        result = await run(pipeline, [connector], database=sqlite_url)
        assert result.status == expected
        assert result.run.failed_requests == 1
        assert result.events[0].kind == "request_failed"
        assert "/items/19" in result.events[0].message
    assert db_rows(sqlite_url, "select count(*) from items") == [(95,)]


async def test_garbage_response_is_recorded_not_fatal(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    app = web.Application()

    async def garbage(request: web.Request) -> web.Response:
        if request.match_info["page"] == "3":
            return web.Response(text="<html>oops</html>", content_type="text/html")
        return web.json_response({"items": [{"id": int(request.match_info["page"])}]})

    app.router.add_get("/items/{page}", garbage)
    base = await serve(app)
    connector = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))
    pipeline = Pipeline(
        name="garbage",
        policy=RunPolicy(max_failed_ratio=0.5),
        stages=[pages(5), Transform(name="t", select=["id"]), Store(name="s", table="t", key="id")],
    )
    result = await run(pipeline, [connector], database=sqlite_url)
    assert result.status == "partial"
    assert result.events[0].kind == "bad_response"
    assert "response is not JSON" in result.events[0].message
    assert db_rows(sqlite_url, "select id from t order by id") == [(0,), (1,), (2,), (4,)]


async def test_a_dry_run_holds_back_a_post_and_is_not_a_failure(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    """A dry run does not send what changes things; that is not lost work (it failed the
    run by the policy's ratio: a dry run of a correct pipeline always failed)."""
    posted: list[object] = []

    async def create(request: web.Request) -> web.Response:
        posted.append(await request.json())
        return web.json_response({"id": 1})

    app = web.Application()
    app.router.add_post("/things", create)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=str(base)))
    pipeline = Pipeline(
        name="create",
        stages=[
            Fetch(name="make", connector="api", method="POST", path="/things", body={"n": 1}),
            Store(name="save", table="things", key=["id"]),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url, dry_run=True)
    assert posted == []
    assert result.status == "ok", result.run.error
    stage = result.stats.stages["make"]
    assert (stage.dry_run_skipped, stage.not_sent, result.run.skipped_requests) == (1, 0, 0)
    assert [e.kind for e in result.events] == ["dry_run_skipped"]
