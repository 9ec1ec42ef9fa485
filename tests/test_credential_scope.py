"""No credential leaves its origin: not through a redirect, not into the journal.

Two real servers on loopback are two origins (different ports). The first redirects to
the second; the second records every header, cookie and query parameter it receives.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner

from podium.cli import app as cli
from podium.connectors import ConnectorConfig, HttpConnector, RetryPolicy
from podium.orchestrator import run
from podium.pipeline import Fetch, Pipeline, RunNotFound, Store, Transform

pytestmark = pytest.mark.anyio
TOKEN = "tok-3f9a-never-leaves"
API_KEY = "key-77c1-never-leaves"
QUERY_KEY = "qkey-5d2e-never-leaves"


def landing_app() -> tuple[web.Application, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    app = web.Application()

    async def land(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "headers": dict(request.headers),
                "cookies": dict(request.cookies),
                "query": dict(request.query),
                "body": await request.text(),
            }
        )
        return web.json_response({"id": 1, "landed": True})

    app.router.add_route("*", "/land", land)
    return app, seen


def origin_app(target: str, status: int = 302) -> web.Application:
    """Sets a session cookie on /login-less /start, then redirects to ``target``."""
    app = web.Application()

    async def start(_request: web.Request) -> web.Response:
        response = web.Response(status=status, headers={"Location": target})
        response.set_cookie("session", "sess-secret-cookie", path="/")
        return response

    async def here(request: web.Request) -> web.Response:
        return web.json_response({"id": 2, "auth": request.headers.get("Authorization")})

    app.router.add_route("*", "/start", start)
    app.router.add_get("/here", here)
    return app


def connector(base: str, **extra: Any) -> HttpConnector:
    return HttpConnector(
        "api",
        ConnectorConfig(
            kind="http",
            base_url=base,
            headers={"X-Api-Key": API_KEY, "Accept": "application/json"},
            auth={"type": "bearer", "token": TOKEN},
            retry=RetryPolicy(attempts=1),
            **extra,
        ),
    )


def one_fetch(path: str, method: str = "GET", **fetch: Any) -> Pipeline:
    return Pipeline(
        name="hop",
        stages=[
            Fetch(name="f", connector="api", path=path, method=method, **fetch),
            Store(name="save", table="t", key="id"),
        ],
    )


async def test_a_redirect_to_another_origin_carries_no_credential(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    landing, seen = landing_app()
    other = await serve(landing)
    base = await serve(origin_app(f"{other}/land?from=redirect"))
    api = connector(base)
    pipeline = one_fetch("/start", params={"api_key": QUERY_KEY})
    # Warm the jar: the first request's response sets a cookie for the first origin.
    result = await run(pipeline, [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    [hop] = seen
    sent = " ".join(str(v) for v in (hop["headers"], hop["cookies"], hop["query"]))
    for secret in (TOKEN, API_KEY, QUERY_KEY, "sess-secret-cookie"):
        assert secret not in sent
    assert "Authorization" not in hop["headers"] and "X-Api-Key" not in hop["headers"]
    assert hop["headers"]["Accept"] == "application/json"  # what is not a credential stays
    assert hop["query"] == {"from": "redirect"}


async def test_a_redirect_on_the_same_origin_keeps_the_credentials(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app = origin_app("/here")
    base = await serve(app)
    result = await run(one_fetch("/start"), [connector(base)], database=sqlite_url)
    assert result.status == "ok", result.run.error
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        assert db.execute("select auth from t").fetchone() == (f"Bearer {TOKEN}",)


async def test_any_origin_must_be_asked_for(serve: Callable[..., Any], sqlite_url: str) -> None:
    landing, seen = landing_app()
    other = await serve(landing)
    base = await serve(origin_app(f"{other}/land"))
    api = connector(base, redirects={"credentials": "any_origin"})
    result = await run(one_fetch("/start"), [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert seen[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"


async def test_303_after_a_post_becomes_a_bodiless_get(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    landing, seen = landing_app()
    other = await serve(landing)
    base = await serve(origin_app(f"{other}/land", status=303))
    result = await run(
        one_fetch("/start", method="POST", body={"q": 1}), [connector(base)], database=sqlite_url
    )
    assert result.status == "ok", result.run.error
    assert (seen[0]["method"], seen[0]["body"]) == ("GET", "")


async def test_event_details_and_rejected_records_are_redacted(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """An API that echoes the token in its error body, and a record that carries it."""
    app = web.Application()

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": f"token {request.headers.get('Authorization')} expired"}, status=403
        )

    async def rows(request: web.Request) -> web.Response:
        return web.json_response([{"id": 1, "n": "x", "note": f"seen {TOKEN}"}])

    app.router.add_get("/echo", echo)
    app.router.add_get("/rows", rows)
    base = await serve(app)
    pipeline = Pipeline(
        name="leaky",
        stages=[
            Fetch(name="echo", connector="api", path="/echo"),
            Fetch(name="rows", connector="api", path="/rows"),
            Transform(name="num", coerce={"n": "int"}, **{"from": "rows"}),
            Store(name="save", table="r", key="id"),
        ],
    )
    result = await run(pipeline, [connector(base)], database=sqlite_url)
    kinds = {e.kind for e in result.events}
    assert {"request_failed", "record_rejected"} <= kinds
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        journal = " ".join(
            str(r)
            for table in ("podium_runs", "podium_run_events", "podium_check_results")
            for r in db.execute(f"select * from {table}")
        )
    assert TOKEN not in journal
    assert "token Bearer *** expired" in journal or "token *** expired" in journal
    assert "seen ***" in journal


def test_a_run_id_prefix_is_not_a_pattern(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "p.db"}"\n', encoding="utf-8")
    runner = CliRunner()
    with sqlite3.connect(tmp_path / "p.db") as db:
        db.execute("create table if not exists x (a)")  # any file; the journal comes next
    first = runner.invoke(cli, ["runs", "--config", str(config)])
    assert first.exit_code == 0, first.output
    for pattern in ("%", "_", "%%"):
        shown = runner.invoke(cli, ["show", pattern, "--config", str(config)])
        assert shown.exit_code == 2
        assert f"no run with id {pattern!r}" in shown.output
    assert RunNotFound.__module__ == "podium"


@pytest.mark.parametrize("where", ["headers", "auth"])
def test_a_value_with_cr_lf_is_refused_when_the_config_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.setenv("TOKEN_FROM_ENV", "abc\r\nX-Injected: 1")
    table = (
        'headers = { "X-Token" = "${TOKEN_FROM_ENV}" }'
        if where == "headers"
        else 'auth = { type = "bearer", token = "${TOKEN_FROM_ENV}" }'
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[connectors.api]
kind = "http"
base_url = "http://127.0.0.1:9"
{table}

[pipelines.p]
[[pipelines.p.stages]]
name = "f"
kind = "fetch"
connector = "api"
""",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["validate", "--config", str(config)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "contains a control character (CR); it must be one line" in lines[0]
    assert f"connectors.api.{where}" in lines[0]
    assert "X-Injected" not in result.output and "Traceback" not in result.output
