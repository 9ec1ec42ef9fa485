"""OAuth2 client credentials against a local token server and API.

One token serves every concurrent request of a connector; a 401 costs exactly one
refresh however many requests see it at once; the token never reaches logs or the
database.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from loguru import logger

from podium.connectors import ConnectorConfig, HttpConnector, OAuth2ClientCredentials
from podium.orchestrator import run
from podium.pipeline import Fetch, Pipeline, Store

from .conftest import podium_logging

pytestmark = pytest.mark.anyio

CLIENT_ID, CLIENT_SECRET = "podium-client", "s3cret-client-value"


@dataclass
class TokenServer:
    token_requests: int = 0
    data_requests: int = 0
    unauthorized: int = 0
    issued: list[str] = field(default_factory=list)
    valid: set[str] = field(default_factory=set)
    revoke_after: int | None = None  # revoke every token when this many data requests came
    expires_in: float = 3600
    forms: list[dict[str, str]] = field(default_factory=list)


def oauth_app(state: TokenServer, delay: float = 0.01) -> web.Application:
    app = web.Application()

    async def token(request: web.Request) -> web.Response:
        state.token_requests += 1
        form = dict(await request.post())
        state.forms.append(form)
        await asyncio.sleep(delay)  # a slow token endpoint invites a thundering herd
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != CLIENT_ID
            or form.get("client_secret") != CLIENT_SECRET
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        value = f"tok-{uuid.uuid4().hex}"
        state.issued.append(value)
        state.valid.add(value)
        return web.json_response(
            {"access_token": value, "token_type": "Bearer", "expires_in": state.expires_in}
        )

    async def data(request: web.Request) -> web.Response:
        state.data_requests += 1
        if state.revoke_after is not None and state.data_requests == state.revoke_after:
            state.valid.clear()
        await asyncio.sleep(delay)
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in state.valid:
            state.unauthorized += 1
            return web.json_response({"error": "invalid_token"}, status=401)
        n = int(request.match_info["n"])
        return web.json_response({"id": n, "value": n * 10})

    app.router.add_post("/oauth/token", token)
    app.router.add_get("/data/{n}", data)
    return app


def connector(base: str, *, secret: str = CLIENT_SECRET, margin: float = 30.0) -> HttpConnector:
    auth = OAuth2ClientCredentials(
        type="oauth2_client_credentials",
        token_url="/oauth/token",
        client_id=CLIENT_ID,
        client_secret=secret,
        expiry_margin=margin,
    )
    config = ConnectorConfig(kind="http", base_url=base, auth=auth, concurrency=16)
    return HttpConnector("api", config)


def pipeline(n: int) -> Pipeline:
    return Pipeline(
        name="oauth",
        stages=[
            Fetch(
                name="data", connector="api", for_each={"range": [0, n]}, as_="n", path="/data/{n}"
            ),
            Store(name="save", table="data", key=["id"]),
        ],
    )


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Everything podium logs during the test, at DEBUG level, as formatted lines."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message} {extra}")
    with podium_logging():
        yield lines
    logger.remove(sink)


def database_text(url: str) -> str:
    """Every value of every table, as one text to search for leaked secrets."""
    parts: list[str] = []
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in db.execute(f'select * from "{table}"'):
                parts.append(repr(row))
    return "\n".join(parts)


async def test_one_token_for_many_concurrent_calls(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    state = TokenServer()
    base = await serve(oauth_app(state))
    result = await run(pipeline(60), [connector(base)], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert result.run.stored == 60
    assert state.token_requests == 1
    assert state.data_requests == 60
    assert state.forms[0]["grant_type"] == "client_credentials"


async def test_a_401_burst_triggers_exactly_one_refresh(
    serve: Callable[..., Any], sqlite_url: str, log_lines: list[str]
) -> None:
    state = TokenServer(revoke_after=20)
    base = await serve(oauth_app(state))
    result = await run(pipeline(60), [connector(base)], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert result.run.stored == 60
    # Up to 16 requests were in flight with the revoked token and all got 401; the
    # first to ask refreshed, the others found the new token waiting for them.
    assert state.unauthorized > 1
    assert state.token_requests == 2
    assert state.data_requests == 60 + state.unauthorized
    assert result.run.failed_requests == 0

    text = "\n".join(log_lines) + database_text(sqlite_url)
    for token in state.issued:
        assert token not in text
    assert CLIENT_SECRET not in text


def one_at_a_time(n: int) -> Pipeline:
    return Pipeline(
        name="oauth",
        stages=[
            Fetch(
                name="data", connector="api", for_each={"range": [0, n]}, as_="n", path="/data/{n}"
            )
        ],
    )


async def test_an_expired_token_is_not_reused(serve: Callable[..., Any], sqlite_url: str) -> None:
    """A token that is already expired when it arrives serves one request only."""
    state = TokenServer(expires_in=0)
    base = await serve(oauth_app(state, delay=0))
    api = connector(base, margin=10)
    api = HttpConnector("api", api.config.model_copy(update={"concurrency": 1}))
    result = await run(one_at_a_time(3), [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert state.token_requests == 3


async def test_a_token_shorter_than_the_margin_is_still_shared(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """expires_in 20 s under the default 30 s margin: renewed half-way through its life
    (after 10 s), not before every request, so 60 concurrent calls still share one token
    fetch instead of queueing on the token lock one by one."""
    state = TokenServer(expires_in=20)
    base = await serve(oauth_app(state))
    result = await run(pipeline(60), [connector(base)], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert result.run.stored == 60
    assert state.token_requests == 1
    assert state.data_requests == 60


async def test_a_short_lived_token_is_renewed_half_way(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """expires_in 0.4 s: usable for 0.2 s; 4 sequential calls of 0.15 s each outlive it."""
    state = TokenServer(expires_in=0.4)
    base = await serve(oauth_app(state, delay=0.15))
    api = HttpConnector("api", connector(base).config.model_copy(update={"concurrency": 1}))
    result = await run(one_at_a_time(4), [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert state.token_requests >= 2
    assert state.unauthorized == 0


async def test_a_refused_client_fails_with_one_token_request_and_no_secret(
    serve: Callable[..., Any], sqlite_url: str, log_lines: list[str]
) -> None:
    state = TokenServer()
    base = await serve(oauth_app(state))
    result = await run(
        pipeline(20), [connector(base, secret="wrong-secret-value")], database=sqlite_url
    )
    assert result.status == "failed"
    assert result.run.stored == 0
    assert state.token_requests == 1  # the failure is remembered, not retried by each request
    assert state.data_requests == 0
    assert any("could not obtain its credential" in e.message for e in result.events)
    assert any("/token: HTTP 401" in e.message for e in result.events)
    text = "\n".join(log_lines) + database_text(sqlite_url)
    assert "wrong-secret-value" not in text


def test_the_client_secret_is_a_connector_secret() -> None:
    api = connector("http://127.0.0.1:1")
    assert CLIENT_SECRET in api.secrets()
