"""One consistent counting model, written while the run goes; checks that see every
outcome; and a run error that says why, not only how much."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from aiohttp import web
from typer.testing import CliRunner

from podium.cli import app as cli
from podium.connectors import ConnectorConfig, HttpConnector, RetryPolicy
from podium.orchestrator import run
from podium.orchestrator.engine import _runner
from podium.pipeline import Check, Fetch, Pipeline, Store

from .conftest import podium_logging
from .daemon_helpers import wait_for

pytestmark = pytest.mark.anyio


def login_app() -> tuple[web.Application, dict[str, int]]:
    """A login that always refuses, and work behind it that must never be reached."""
    hits = {"login": 0, "work": 0}
    app = web.Application()

    async def login(_request: web.Request) -> web.Response:
        hits["login"] += 1
        return web.json_response({"error": "bad credentials"}, status=401)

    async def work(_request: web.Request) -> web.Response:
        hits["work"] += 1
        return web.json_response({"id": 1})

    app.router.add_post("/login", login)
    app.router.add_get("/work/{n}", work)
    return app, hits


async def test_a_refused_login_is_one_cause_not_four_hundred_failures(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, hits = login_app()
    auth = {
        "type": "cookie_login",
        "login_url": "/login",
        "username": "u",
        "password": "wrong-password",
    }
    api = HttpConnector(
        "api",
        ConnectorConfig(kind="http", base_url=await serve(app), auth=auth, concurrency=16),
    )
    pipeline = Pipeline(
        name="locked",
        stages=[
            Fetch(name="work", connector="api", path="/work/{value}", for_each={"range": [0, 400]}),
            Store(name="save", table="w", key="id"),
        ],
    )
    warnings: list[str] = []
    from loguru import logger

    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING", format="{message}")
    try:
        with podium_logging():
            result = await run(pipeline, [api], database=sqlite_url)
    finally:
        logger.remove(sink)
    run_row = result.run
    assert hits == {"login": 1, "work": 0}
    # What went out is what the server saw; nothing was sent that could have failed.
    assert (run_row.requests, run_row.failed_requests, run_row.skipped_requests) == (1, 0, 400)
    assert result.status == "failed"
    [event] = result.events
    assert event.kind == "credential_failed"
    assert len([w for w in warnings if w.startswith("credential failed")]) == 1
    assert run_row.error is not None
    assert "0 of 400 requests failed, 400 were not sent" in run_row.error
    base = api.config.base_url
    assert (
        "1× could not obtain the connector's credential: HTTP 401 "
        f"""(first POST {base}/login; it answered '{{"error": "bad credentials"}}')"""
    ) in run_row.error
    assert "wrong-password" not in run_row.error


async def test_counters_reach_the_run_row_while_it_runs(
    serve: Callable[..., Any], sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader — or a run killed halfway — sees the real counts, not zeros."""
    monkeypatch.setattr(_runner, "HEARTBEAT_SECONDS", 0.1)
    release = anyio.Event()
    served = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        if served > 5:
            await asyncio.wait_for(release.wait(), 10)
        return web.json_response({"id": int(request.match_info["n"])})

    app = web.Application()
    app.router.add_get("/s/{n}", slow)
    api = HttpConnector(
        "api", ConnectorConfig(kind="http", base_url=await serve(app), concurrency=1)
    )
    pipeline = Pipeline(
        name="slow",
        stages=[
            Fetch(name="s", connector="api", path="/s/{value}", for_each={"range": [0, 8]}),
            Store(name="save", table="s", key="id", batch_size=1),
        ],
    )
    path = Path(sqlite_url.removeprefix("sqlite:///"))

    def row() -> tuple[Any, ...] | None:
        if not path.exists():
            return None
        with sqlite3.connect(path) as db:
            try:
                return db.execute("select status, requests, stored from podium_runs").fetchone()
            except sqlite3.OperationalError:
                return None

    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(run, pipeline, [api], database=sqlite_url), name="run")
        seen = await wait_for(
            lambda: (r := row()) and r[1] >= 5 and r[2] >= 5 and r, 10, what="progress"
        )
        assert seen[0] == "running"
        release.set()
    assert row() == ("ok", 8, 8)


def status_app(code: int) -> web.Application:
    app = web.Application()

    async def handler(_request: web.Request) -> web.Response:
        return web.json_response({"error": "down for maintenance"}, status=code)

    app.router.add_get("/health", handler)
    return app


async def test_a_response_check_sees_an_error_status(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """``status == 200`` against a 503: the check fails with the status it saw."""
    api = HttpConnector(
        "api",
        ConnectorConfig(
            kind="http",
            base_url=await serve(status_app(503)),
            retry=RetryPolicy(attempts=2, backoff=0),
        ),
    )
    pipeline = Pipeline(
        name="health",
        stages=[
            Fetch(name="probe", connector="api", path="/health"),
            Check(name="up", on="responses", expect="status == `200`", **{"from": "probe"}),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url)
    [check] = result.checks
    assert (check.passed, check.failed, check.ok) == (0, 1, False)
    [sample] = check.samples
    assert sample["status"] == 503 and sample["error"] is None and sample["connected"] is True
    assert sample["body"] == {"error": "down for maintenance"}
    assert result.status == "failed"


async def test_a_response_check_sees_a_refused_connection(sqlite_url: str) -> None:
    api = HttpConnector(
        "api",
        ConnectorConfig(kind="http", base_url="http://127.0.0.1:9", retry=RetryPolicy(attempts=1)),
    )
    pipeline = Pipeline(
        name="gone",
        stages=[
            Fetch(name="probe", connector="api", path="/health"),
            Check(name="up", on="responses", expect="status == `200`", **{"from": "probe"}),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url)
    [check] = result.checks
    assert (check.passed, check.failed) == (0, 1)
    [sample] = check.samples
    assert sample["status"] is None and sample["connected"] is False
    assert sample["error"] == "connection"
    assert "connection refused" in sample["cause"]


async def test_json_and_show_name_the_causes(serve: Callable[..., Any], tmp_path: Path) -> None:
    base = await serve(status_app(401))
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "p.db"}"

[connectors.api]
kind = "http"
base_url = "{base}"

[pipelines.probe]
[[pipelines.probe.stages]]
name = "probe"
kind = "fetch"
connector = "api"
path = "/health"
""",
        encoding="utf-8",
    )
    runner = CliRunner()
    out = await anyio.to_thread.run_sync(
        lambda: runner.invoke(cli, ["run", "probe", "--config", str(config), "--json"])
    )
    assert out.exit_code == 1
    doc = orjson.loads(out.stdout)
    assert doc["error"].startswith("1 of 1 requests failed")
    assert f"1× HTTP 401 (first GET {base}/health;" in doc["error"]
    assert [e["kind"] for e in doc["events"]] == ["request_failed"]
    shown = await anyio.to_thread.run_sync(
        lambda: runner.invoke(cli, ["show", doc["run_id"][:8], "--config", str(config)])
    )
    assert shown.exit_code == 0
    text = " ".join(shown.stdout.split())
    assert "1× HTTP 401 (first GET" in text
    assert "probe" in text and "requests" in text  # the stage table, not raw JSON
