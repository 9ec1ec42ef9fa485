"""Incremental loading: the second run asks only for what is new, and a failed run does
not move the high-water mark, so nothing is ever skipped."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import load_config, open_database, run, run_pipeline
from podium.pipeline import Check, Fetch, Pipeline, Record, Store, Transform

from .servers import Seen

pytestmark = pytest.mark.anyio


def event(i: int) -> dict[str, Any]:
    return {"id": i, "updated_at": f"2026-11-{i:02d}T10:00:00Z", "title": f"event {i}"}


def events_app(events: list[dict[str, Any]]) -> tuple[web.Application, Seen]:
    """``/events?since=T``: events updated after T, in pages of 4 (cursor paginated)."""
    seen = Seen()
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        seen.requests += 1
        since = request.query.get("since")
        seen.log.append({"since": since, "cursor": request.query.get("cursor")})
        newer = [e for e in events if since is None or e["updated_at"] > since]
        start = int(request.query.get("cursor", "0"))
        page = newer[start : start + 4]
        nxt = start + 4 if start + 4 < len(newer) else None
        return web.json_response({"events": page, "next": nxt})

    app.router.add_get("/events", handler)
    return app, seen


def incremental_pipeline(*, transform: Transform | None = None) -> Pipeline:
    stages: list[Any] = [
        Fetch(
            name="events",
            connector="api",
            path="/events",
            records="events",
            paginate={"type": "cursor", "path": "next"},
            incremental={"cursor_field": "updated_at", "param": "since"},
        )
    ]
    if transform is not None:
        stages.append(transform)
    stages.append(Store(name="save", table="events", key=["id"]))
    return Pipeline(name="inc", stages=stages)


def stored_ids(url: str) -> list[int]:
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        return [r[0] for r in db.execute("select id from events order by id")]


def state_rows(url: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        return db.execute("select pipeline, key, value from podium_state").fetchall()


async def test_second_run_requests_and_stores_only_new_records(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    events = [event(i) for i in range(1, 11)]
    app, seen = events_app(events)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))

    first = await run(incremental_pipeline(), [api], database=sqlite_url)
    assert first.status == "ok", first.run.error
    assert first.run.stored == 10
    assert [entry["since"] for entry in seen.log] == [None, None, None]
    assert state_rows(sqlite_url) == [("inc", "incremental:events", '"2026-11-10T10:00:00Z"')]

    events.extend(event(i) for i in range(11, 14))
    seen.log.clear()
    second = await run(incremental_pipeline(), [api], database=sqlite_url)
    assert second.status == "ok", second.run.error
    assert [entry["since"] for entry in seen.log] == ["2026-11-10T10:00:00Z"]
    assert second.stats.stages["events"].records_out == 3  # only the new ones came back
    assert second.run.stored == 3
    assert stored_ids(sqlite_url) == list(range(1, 14))
    assert state_rows(sqlite_url) == [("inc", "incremental:events", '"2026-11-13T10:00:00Z"')]

    seen.log.clear()
    third = await run(incremental_pipeline(), [api], database=sqlite_url)
    assert third.status == "ok"
    assert third.run.stored == 0
    assert [entry["since"] for entry in seen.log] == ["2026-11-13T10:00:00Z"]


async def test_a_run_that_fails_before_storing_does_not_advance(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    events = [event(i) for i in range(1, 6)]
    app, seen = events_app(events)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))
    assert (await run(incremental_pipeline(), [api], database=sqlite_url)).status == "ok"

    events.extend(event(i) for i in range(6, 9))

    def broken(record: Record) -> Record:
        raise RuntimeError("the transform is broken")

    failed = await run(
        incremental_pipeline(transform=Transform(name="shape", call=broken)),
        [api],
        database=sqlite_url,
    )
    assert failed.status == "failed"
    assert failed.stats.stages["events"].records_out == 3  # fetched, never stored
    assert stored_ids(sqlite_url) == [1, 2, 3, 4, 5]
    assert state_rows(sqlite_url) == [("inc", "incremental:events", '"2026-11-05T10:00:00Z"')]

    seen.log.clear()
    retried = await run(incremental_pipeline(), [api], database=sqlite_url)
    assert retried.status == "ok"
    assert [entry["since"] for entry in seen.log] == ["2026-11-05T10:00:00Z"]
    assert stored_ids(sqlite_url) == list(range(1, 9))


async def test_a_lost_request_does_not_advance(serve: Callable[..., Any], sqlite_url: str) -> None:
    """A fetch with a failed request (the run still partial) keeps its old mark."""
    events = [event(i) for i in range(1, 4)]
    seen = Seen()
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        seen.log.append(dict(request.query))
        if request.match_info["part"] == "b":
            return web.json_response({"error": "down"}, status=404)
        return web.json_response({"events": events})

    app.router.add_get("/parts/{part}", handler)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))
    pipeline = Pipeline(
        name="inc",
        policy={"max_failed_ratio": 0.9},
        stages=[
            Fetch(
                name="events",
                connector="api",
                for_each=["a", "b"],
                as_="part",
                path="/parts/{part}",
                records="events",
                incremental={"cursor_field": "updated_at", "param": "since", "initial": "2026"},
            ),
            Store(name="save", table="events", key=["id"]),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url)
    assert result.status == "partial"
    assert result.run.stored == 3
    assert state_rows(sqlite_url) == []
    assert {entry["since"] for entry in seen.log} == {"2026"}  # the initial mark was sent


async def test_incremental_from_the_config_file(
    serve: Callable[..., Any], sqlite_url: str, tmp_path: Path
) -> None:
    events = [event(i) for i in range(1, 4)]
    app, seen = events_app(events)
    base = await serve(app)
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "{sqlite_url}"

[connectors.api]
kind = "http"
base_url = "{base}"

[pipelines.inc]
[[pipelines.inc.stages]]
name = "events"
kind = "fetch"
connector = "api"
path = "/events"
records = "events"
paginate = {{ type = "cursor", path = "next" }}
incremental = {{ cursor_field = "updated_at", param = "since", initial = "2026-11-02" }}

[[pipelines.inc.stages]]
name = "save"
kind = "store"
table = "events"
key = ["id"]
""",
        encoding="utf-8",
    )
    config = load_config(path, env={})
    pipeline = config.pipeline("inc")
    async with open_database(sqlite_url) as database:
        result = await run_pipeline(
            pipeline, connectors=config.connectors_for(pipeline), database=database
        )
    assert result.status == "ok", result.run.error
    assert seen.log[0]["since"] == "2026-11-02"
    assert stored_ids(sqlite_url) == [2, 3]


def test_a_misspelt_incremental_key_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        """
[connectors.api]
kind = "http"

[[pipelines.inc.stages]]
name = "events"
kind = "fetch"
connector = "api"
incremental = { cursor = "updated_at", param = "since" }
""",
        encoding="utf-8",
    )
    config = load_config(path, env={})
    [problem] = config.problems()
    assert str(problem) == (
        f"{path}: pipelines.inc.stages[0].incremental.cursor: unknown key 'cursor' "
        "(did you mean 'cursor_field'?)"
    )


async def test_a_record_lost_downstream_does_not_advance(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """The fetch itself is fine, but a dropping check loses a record before the store:
    the run is partial and the mark stays, so the next run asks for the record again."""
    events = [event(i) for i in range(1, 6)]
    app, seen = events_app(events)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))
    fetch = incremental_pipeline().stages[0]
    lossy = Pipeline(
        name="inc",
        stages=[
            fetch,
            Check(name="not3", expect="id != `3`", severity="warn", drop=True),
            Store(name="save", table="events", key=["id"]),
        ],
    )
    first = await run(lossy, [api], database=sqlite_url)
    assert first.status == "partial"
    assert stored_ids(sqlite_url) == [1, 2, 4, 5]
    second = await run(incremental_pipeline(), [api], database=sqlite_url)
    assert second.status == "ok"
    assert seen.log[-1]["since"] is None  # the mark never moved: the whole window again
    assert stored_ids(sqlite_url) == [1, 2, 3, 4, 5]
