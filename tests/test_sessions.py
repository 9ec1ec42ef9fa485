"""One aiohttp session per connector: cookie jar, headers and auth never cross connectors."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import run
from podium.pipeline import Fetch, Pipeline, Store

from .servers import session_app

pytestmark = pytest.mark.anyio

N = 50


def login_then_work(users: list[str]) -> Pipeline:
    stages: list = []
    for user in users:
        stages += [
            Fetch(
                name=f"login_{user}",
                connector=user,
                path="/login",
                params={"user": user},
                records="work",
            ),
            Fetch(
                name=f"work_{user}",
                connector=user,
                inputs=(f"login_{user}",),
                path="/work/{user}/{n}",
            ),
        ]
    stages.append(
        Store(name="save", inputs=tuple(f"work_{u}" for u in users), table="work", key=["id"])
    )
    return Pipeline(name="sessions", stages=stages)


def connector(user: str, base: str) -> HttpConnector:
    return HttpConnector(
        user,
        ConnectorConfig(
            kind="http",
            base_url=base,
            concurrency=10,
            headers={"X-Client": user},
            auth={"type": "bearer", "token": f"token-{user}"},
        ),
    )


async def test_each_connector_keeps_its_own_cookies_and_auth_under_concurrency(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    app, seen = session_app(items=N, delay=0.005)
    base = await serve(app)

    result = await run(
        login_then_work(["a", "b"]),
        [connector("a", base), connector("b", base)],
        database=sqlite_url,
    )

    assert result.status == "ok", result.run.error
    assert result.run.stored == 2 * N
    # The work requests really overlapped, both connectors' at once.
    assert seen.max_in_flight > 10
    paths = Counter(entry["path"] for entry in seen.log)
    assert paths["/login"] == 2
    assert len(seen.log) == 2 * (N + 1)
    for user in ("a", "b"):
        logins = [e for e in seen.log if e["path"] == "/login" and e["user"] == user]
        work = [e for e in seen.log if e["path"].startswith(f"/work/{user}/")]
        assert len(logins) == 1 and len(work) == N
        # The login went out with the connector's token and an empty cookie jar.
        assert logins[0]["authorization"] == f"Bearer token-{user}"
        assert logins[0]["cookies"] == {}
        # Every later request carried this connector's cookie and token, and nothing else.
        assert {e["authorization"] for e in work} == {f"Bearer token-{user}"}
        assert [e["cookies"] for e in work] == [{"session": f"sess-{user}"}] * N
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        rows = db.execute("select user, count(*), count(distinct n) from work group by user")
        assert sorted(rows.fetchall()) == [("a", N, N), ("b", N, N)]


async def test_a_session_does_not_outlive_its_run(
    serve: Callable[..., object], sqlite_url: str
) -> None:
    """The next run of the same connector starts with an empty cookie jar."""
    app, seen = session_app(items=2)
    base = await serve(app)
    api = connector("a", base)
    login = Pipeline(
        name="login",
        stages=[Fetch(name="login_a", connector="a", path="/login", params={"user": "a"})],
    )
    work = Pipeline(
        name="work",
        stages=[Fetch(name="work", connector="a", path="/work/a/{n}", for_each=[{"n": 0}])],
    )

    assert (await run(login_then_work(["a"]), [api], database=sqlite_url)).status == "ok"
    assert (await run(login, [api], database=sqlite_url)).status == "ok"
    assert (await run(work, [api], database=sqlite_url)).status == "ok"

    # Within the first run the cookie was sent; the last run's request had none.
    assert [e["cookie"] for e in seen.log if e["path"].startswith("/work/")] == [
        "sess-a",
        "sess-a",
        None,
    ]
    assert seen.log[-1]["authorization"] == "Bearer token-a"
