"""Login by cookie: POST credentials once, then the session's own cookie jar carries it.

Two connectors logged in as different users against one server run concurrently in one
pipeline; each connector's session has its own jar, so neither ever sees the other's data.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, CookieLogin, HttpConnector
from podium.orchestrator import run
from podium.pipeline import Fetch, Pipeline, Store

pytestmark = pytest.mark.anyio

USERS = {"alice": "alice-password", "bob": "bob-password"}


@dataclass
class LoginServer:
    logins: Counter[str] = field(default_factory=Counter)
    sessions: dict[str, str] = field(default_factory=dict)  # sid -> user
    requests: Counter[str] = field(default_factory=Counter)
    arrivals: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    expire_after: int | None = None  # drop every session at this many data requests


def login_app(state: LoginServer) -> web.Application:
    app = web.Application()

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        user, password = str(form.get("user", "")), str(form.get("password", ""))
        if USERS.get(user) != password:
            return web.json_response({"error": "bad credentials"}, status=401)
        state.logins[user] += 1
        sid = secrets.token_hex(8)
        state.sessions[sid] = user
        response = web.json_response({"ok": True})
        response.set_cookie("sid", sid, httponly=True)
        return response

    async def mine(request: web.Request) -> web.Response:
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            state.arrivals += 1
            if state.arrivals == state.expire_after:
                state.sessions.clear()
            await asyncio.sleep(0.005)
            user = state.sessions.get(request.cookies.get("sid", ""))
            if user is None:
                return web.json_response({"error": "not logged in"}, status=401)
            state.requests[user] += 1
            n = int(request.match_info["n"])
            return web.json_response({"id": n, "owner": user, "secret_of": f"{user}-{n}"})
        finally:
            state.in_flight -= 1

    app.router.add_post("/login", login)
    app.router.add_get("/mine/{n}", mine)
    return app


def user_connector(name: str, base: str, user: str, password: str) -> HttpConnector:
    auth = CookieLogin(
        type="cookie_login",
        login_url="/login",
        username=user,
        password=password,
        username_field="user",
    )
    return HttpConnector(
        name, ConnectorConfig(kind="http", base_url=base, auth=auth, concurrency=8)
    )


def two_users_pipeline(n: int) -> Pipeline:
    def fetch(name: str, connector: str) -> Fetch:
        return Fetch(
            name=name, connector=connector, for_each={"range": [0, n]}, as_="n", path="/mine/{n}"
        )

    return Pipeline(
        name="cookies",
        stages=[
            fetch("alice_items", "as_alice"),
            fetch("bob_items", "as_bob"),
            Store(name="alice_save", inputs=("alice_items",), table="alice_rows", key=["id"]),
            Store(name="bob_save", inputs=("bob_items",), table="bob_rows", key=["id"]),
        ],
    )


def owners(url: str, table: str) -> Counter[str]:
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        return Counter(row[0] for row in db.execute(f"select owner from {table}"))


async def test_two_logins_never_see_each_others_data(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    state = LoginServer()
    base = await serve(login_app(state))
    alice = user_connector("as_alice", base, "alice", USERS["alice"])
    bob = user_connector("as_bob", base, "bob", USERS["bob"])

    result = await run(two_users_pipeline(100), [alice, bob], database=sqlite_url)

    assert result.status == "ok", result.run.error
    assert state.max_in_flight > 8  # both users' requests were in flight together
    assert state.logins == {"alice": 1, "bob": 1}  # once per connector, before its first call
    assert state.requests == {"alice": 100, "bob": 100}
    assert owners(sqlite_url, "alice_rows") == {"alice": 100}
    assert owners(sqlite_url, "bob_rows") == {"bob": 100}


async def test_an_expired_session_logs_in_again_once(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    state = LoginServer(expire_after=30)
    base = await serve(login_app(state))
    alice = user_connector("as_alice", base, "alice", USERS["alice"])
    pipeline = Pipeline(
        name="relogin",
        stages=[
            Fetch(
                name="items",
                connector="as_alice",
                for_each={"range": [0, 80]},
                as_="n",
                path="/mine/{n}",
            ),
            Store(name="save", table="rows", key=["id"]),
        ],
    )
    result = await run(pipeline, [alice], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert state.logins == {"alice": 2}
    assert owners(sqlite_url, "rows") == {"alice": 80}


async def test_a_refused_login_fails_the_run_in_one_line(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    state = LoginServer()
    base = await serve(login_app(state))
    mallory = user_connector("as_alice", base, "alice", "guessed-password")
    pipeline = Pipeline(
        name="refused",
        stages=[Fetch(name="items", connector="as_alice", path="/mine/1")],
    )
    result = await run(pipeline, [mallory], database=sqlite_url)
    assert result.status == "failed"
    assert state.requests == {}
    [event] = result.events
    # The cause, once: the login's status and what the login endpoint answered.
    assert "could not obtain its credential: POST " in event.message
    assert event.message.endswith(
        """/login: HTTP 401; it answered '{"error": "bad credentials"}'"""
    )
    assert "guessed-password" not in repr(result.events)
