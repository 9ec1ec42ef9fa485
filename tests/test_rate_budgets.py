"""Rate budgets: the server's own clock shows the rate kept, the API's rate-limit headers
obeyed before any 429, one budget shared by the runs of a process, and a used-up quota
stopping a run cleanly (partial, cursor kept) for the next run to continue."""

from __future__ import annotations

import asyncio
import itertools
import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector, RouteRate, parse_rate
from podium.orchestrator import run
from podium.orchestrator.http import Budgets, quota_from_headers
from podium.pipeline import Fetch, Pipeline, Store

pytestmark = pytest.mark.anyio


def stamp_app() -> tuple[web.Application, list[float]]:
    """``/r/{n}``: one record each; the server's monotonic arrival time of each request."""
    arrivals: list[float] = []
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        return web.json_response({"id": int(request.match_info["n"])})

    app.router.add_get("/r/{n}", handler)
    return app, arrivals


def most_in_a_second(times: list[float]) -> int:
    """The most arrivals in any 1-second sliding window."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def numbered(name: str, count: int, connector: str = "api") -> Pipeline:
    return Pipeline(
        name=name,
        stages=[
            Fetch(
                name="get",
                connector=connector,
                for_each={"range": [0, count]},
                as_="n",
                path="/r/{n}",
            ),
            Store(name="save", table=f"{name}_rows", key=["id"]),
        ],
    )


def count_rows(url: str, table: str) -> int:
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        return int(db.execute(f"select count(*) from {table}").fetchone()[0])


async def test_twenty_a_second_over_two_hundred_requests(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, arrivals = stamp_app()
    base = await serve(app)
    api = HttpConnector(
        "api", ConnectorConfig(kind="http", base_url=base, concurrency=16, rate="20/s")
    )
    started = time.monotonic()
    result = await run(numbered("rated", 200), [api], database=sqlite_url)
    took = time.monotonic() - started
    assert result.status == "ok", result.run.error
    assert count_rows(sqlite_url, "rated_rows") == 200
    assert len(arrivals) == 200
    assert most_in_a_second(arrivals) <= 21, most_in_a_second(arrivals)
    assert took >= 9.5, took
    assert arrivals[-1] - arrivals[0] >= 9.4


async def test_two_runs_on_one_connector_share_its_budget(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    """Two pipelines at once on the connector "shared", as a daemon runs them: the
    server sees the connector's rate, not twice it."""
    app, arrivals = stamp_app()
    base = await serve(app)

    def connector() -> HttpConnector:  # each run its own object, as each config load makes
        return HttpConnector(
            "shared", ConnectorConfig(kind="http", base_url=base, concurrency=8, rate="20/s")
        )

    results: dict[str, Any] = {}

    async def one(name: str) -> None:
        url = f"sqlite:///{tmp_path / name}.db"
        results[name] = await run(numbered(name, 20, "shared"), [connector()], database=url)

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "first")
        tg.start_soon(one, "second")
    took = time.monotonic() - started
    assert [r.status for r in results.values()] == ["ok", "ok"]
    assert len(arrivals) == 40
    assert most_in_a_second(arrivals) <= 21, most_in_a_second(arrivals)
    assert took >= 1.85, took  # 40 slots at 20/s: 39 gaps of 50 ms


class QuotaServer:
    """A fixed-window quota: ``limit`` requests per window of ``window`` seconds, the
    window starting at its first request. Each answer states what is left and when the
    window resets, in the header style asked for. A request over the quota before the
    reset is *early*: it is answered 429 and counted."""

    def __init__(self, style: str, limit: int, window: float) -> None:
        self.style, self.limit, self.window = style, limit, window
        self.used = 0
        self.ends = 0.0  # time.time() at which the current window resets
        self.early = 0
        self.arrivals: list[float] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/r/{n}", self.handler)
        return app

    async def handler(self, request: web.Request) -> web.Response:
        now = time.time()
        self.arrivals.append(now)
        if now >= self.ends:
            self.used = 0
            # An epoch reset is whole seconds (as GitHub's): the window ends on one.
            end = now + self.window
            self.ends = math.ceil(end) if self.style == "x-epoch" else end
        if self.used >= self.limit:
            self.early += 1
            return web.json_response({"error": "too many"}, status=429)
        self.used += 1
        left, reset = self.limit - self.used, self.ends - now
        headers = {
            "x-epoch": {"X-RateLimit-Remaining": str(left), "X-RateLimit-Reset": str(self.ends)},
            "x-delta": {"X-RateLimit-Remaining": str(left), "X-RateLimit-Reset": f"{reset:.3f}"},
            "ietf": {"RateLimit-Remaining": str(left), "RateLimit-Reset": f"{reset:.3f}"},
            "structured": {"RateLimit": f'"default";r={left};t={reset:.3f}'},
        }[self.style]
        return web.json_response({"id": int(request.match_info["n"])}, headers=headers)


@pytest.mark.parametrize("style", ["x-epoch", "x-delta", "ietf", "structured"])
async def test_no_request_before_the_stated_reset(
    serve: Callable[..., Any], sqlite_url: str, style: str
) -> None:
    server = QuotaServer(style, limit=5, window=0.4 if style != "x-epoch" else 0.3)
    base = await serve(server.app())
    # No rate of its own: only the headers slow it down; four at a time, so answers
    # come back while others are in flight.
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base, concurrency=4))
    result = await run(numbered("quota", 12), [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert server.early == 0  # no request came before its window reset: never a 429
    assert result.stats.connectors["api"].statuses.get(429, 0) == 0
    assert count_rows(sqlite_url, "quota_rows") == 12
    # 12 requests at 5 a window take three windows: the client waited twice.
    assert server.arrivals[-1] - server.arrivals[0] >= (0.4 if style != "x-epoch" else 0.3)


def events_app(events: list[dict[str, Any]], quota: dict[str, int]) -> web.Application:
    """``/events?since=T``: events after T in pages of 4 (cursor paginated); each answer
    spends one of ``quota["left"]`` and says so, resetting 0.5 s from now."""
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        if quota["left"] <= 0:
            quota["early"] += 1
            return web.json_response({"error": "quota"}, status=429)
        quota["left"] -= 1
        since = request.query.get("since")
        newer = [e for e in events if since is None or e["updated_at"] > since]
        start = int(request.query.get("cursor", "0"))
        nxt = start + 4 if start + 4 < len(newer) else None
        headers = {"X-RateLimit-Remaining": str(quota["left"]), "X-RateLimit-Reset": "0.5"}
        return web.json_response({"events": newer[start : start + 4], "next": nxt}, headers=headers)

    app.router.add_get("/events", handler)
    return app


def event(i: int) -> dict[str, Any]:
    return {"id": i, "updated_at": f"2026-11-{i:02d}T10:00:00Z"}


def state(url: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        return db.execute("select key, value from podium_state").fetchall()


@pytest.mark.parametrize(
    "settings", [{"on_quota": "stop"}, {"on_quota": "wait", "max_wait": 0.1}], ids=["stop", "wait"]
)
async def test_a_used_up_quota_stops_the_run_partial_and_the_next_continues(
    serve: Callable[..., Any], sqlite_url: str, settings: dict[str, Any]
) -> None:
    events = [event(i) for i in range(1, 5)]
    quota = {"left": 100, "early": 0}
    base = await serve(events_app(events, quota))
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base, **settings))
    pipeline = Pipeline(
        name="inc",
        stages=[
            Fetch(
                name="events",
                connector="api",
                path="/events",
                records="events",
                paginate={"type": "cursor", "path": "next"},
                incremental={"cursor_field": "updated_at", "param": "since"},
            ),
            Store(name="save", table="events", key=["id"]),
        ],
    )
    first = await run(pipeline, [api], database=sqlite_url)
    assert first.status == "ok", first.run.error
    assert state(sqlite_url) == [("incremental:events", '"2026-11-04T10:00:00Z"')]

    # Twelve new events are three pages; the quota has two requests left.
    events.extend(event(i) for i in range(5, 17))
    quota["left"] = 2
    second = await run(pipeline, [api], database=sqlite_url)
    assert second.status == "partial", (second.status, second.run.error)
    assert second.run.stored == 8  # the two pages it could fetch are kept
    assert second.stats.stages["events"].stopped == 1
    assert quota["early"] == 0  # the third page was never sent
    kinds = [e.kind for e in second.events]
    assert kinds == ["quota_exhausted"], kinds
    assert "the run stops here and the next run continues" in second.events[0].message
    # The cursor stays where the last complete run left it: nothing is skipped.
    assert state(sqlite_url) == [("incremental:events", '"2026-11-04T10:00:00Z"')]

    await anyio.sleep(0.6)  # the API's window resets
    quota["left"] = 100
    third = await run(pipeline, [api], database=sqlite_url)
    assert third.status == "ok", third.run.error
    assert third.stats.stages["events"].records_out == 12
    assert state(sqlite_url) == [("incremental:events", '"2026-11-16T10:00:00Z"')]
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        assert [r[0] for r in db.execute("select id from events order by id")] == list(range(1, 17))


async def test_a_route_budget_limits_only_its_paths(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, arrivals = stamp_app()
    hits: list[tuple[str, float]] = []

    async def search(request: web.Request) -> web.Response:
        hits.append((request.path, time.monotonic()))
        return web.json_response({"id": 1000 + int(request.match_info["n"])})

    app.router.add_get("/search/{n}", search)
    base = await serve(app)
    config = ConnectorConfig.model_validate(
        {"kind": "http", "base_url": base, "rates": [{"path": "/search/*", "rate": "10/s"}]}
    )
    api = HttpConnector("api", config)
    pipeline = Pipeline(
        name="routes",
        stages=[
            Fetch(name="plain", connector="api", for_each={"range": [0, 30]}, as_="n",
                  path="/r/{n}"),
            Fetch(name="search", connector="api", for_each={"range": [0, 6]}, as_="n",
                  path="/search/{n}"),
            Store(name="save", table="both", key=["id"], inputs=("plain", "search")),
        ],
    )  # fmt: skip
    result = await run(pipeline, [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    searched = sorted(t for _, t in hits)
    assert len(searched) == 6
    assert searched[-1] - searched[0] >= 0.45  # 6 at 10/s: 5 gaps of 100 ms
    assert arrivals[-1] - arrivals[0] < searched[-1] - searched[0]  # the others ran free


def test_rates_and_headers_are_read_as_written() -> None:
    assert parse_rate("600/min").per_second == 10
    assert parse_rate("5000/h").period == 3600
    assert parse_rate(" 2.5 / s ").count == 2.5
    for bad in ("fast", "10", "0/s", "10/week", "-1/s"):
        with pytest.raises(ValueError, match="is not a rate"):
            parse_rate(bad)
    now = 1_800_000_000.0
    quota = quota_from_headers(
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800000030"}, now
    )
    assert quota is not None and quota.remaining == 0 and quota.reset == 30
    quota = quota_from_headers({"ratelimit-remaining": "7", "ratelimit-reset": "12"}, now)
    assert quota is not None and (quota.remaining, quota.reset) == (7, 12)
    quota = quota_from_headers({"RateLimit": "limit=100, remaining=3, reset=9"}, now)
    assert quota is not None and (quota.remaining, quota.reset) == (3, 9)
    assert quota_from_headers({"Content-Type": "application/json"}, now) is None
    assert quota_from_headers({"X-RateLimit-Remaining": "lots"}, now) is None


def test_a_route_matches_by_host_and_path_globs() -> None:
    route = RouteRate(host="*.example.com", path="/search/*", rate="1/s")
    assert route.matches("https://api.example.com/search/x?q=1")
    assert not route.matches("https://api.example.com/items/1")
    assert not route.matches("https://example.org/search/x")
    assert RouteRate(host="API.example.com", rate="1/s").matches("https://api.example.com/")
    with pytest.raises(ValueError, match="needs a 'host' or a 'path'"):
        RouteRate(rate="1/s")


async def test_budgets_are_one_per_connector_and_settings() -> None:
    budgets = Budgets()
    a = ConnectorConfig(kind="http", rate="5/s").rate_settings()
    b = ConnectorConfig(kind="http", rate="6/s").rate_settings()
    assert budgets.get("api", a) is budgets.get("api", a)
    assert budgets.get("api", a) is not budgets.get("api", b)  # a changed config
    assert budgets.get("api", a) is not budgets.get("other", a)


async def test_every_attempt_takes_a_slot(serve: Callable[..., Any], sqlite_url: str) -> None:
    """Retries spend the budget too: three attempts at 10/s are 100 ms apart, though the
    retry policy would send them back to back."""
    times: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        times.append(time.monotonic())
        if len(times) < 3:
            return web.json_response({"error": "oops"}, status=500)
        return web.json_response({"id": 0})

    app = web.Application()
    app.router.add_get("/r/{n}", handler)
    base = await serve(app)
    config = ConnectorConfig.model_validate(
        {"kind": "http", "base_url": base, "rate": "10/s", "retry": {"backoff": 0, "jitter": 0}}
    )
    result = await run(numbered("retried", 1), [HttpConnector("api", config)], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.09 for gap in gaps), gaps


@pytest.mark.parametrize(
    ("refusal", "on_quota"),
    [({}, "stop"), ({"Retry-After": "3600"}, "stop"), ({"Retry-After": "3600"}, "wait")],
    ids=["429, stop", "429 retry after an hour, stop", "429 retry after an hour, wait"],
)
async def test_a_quota_stop_in_a_fan_out_counts_every_item_once(
    serve: Callable[..., Any], sqlite_url: str, refusal: dict[str, str], on_quota: str
) -> None:
    """30 items, a quota of 10 that resets in an hour: the first requests go out together
    (nothing is known yet), the ones past the quota get 429s, and the rest are never
    sent. Every item is either stored or `stopped`; a retry that was never sent is not a
    retry; a request the server saw is counted as sent. A 429 asking to wait an hour is
    the quota used up too, beyond what the connector waits (max_wait, 60 s by default)."""
    seen: list[int] = []
    quota = {"left": 10}
    app = web.Application()

    async def item(request: web.Request) -> web.Response:
        seen.append(int(request.match_info["n"]))
        await asyncio.sleep(0.05)  # the first wave is in flight before any answer
        if quota["left"] <= 0:
            return web.json_response({"error": "quota"}, status=429, headers=refusal)
        quota["left"] -= 1
        headers = {"X-RateLimit-Remaining": str(quota["left"]), "X-RateLimit-Reset": "3600"}
        return web.json_response({"id": int(request.match_info["n"])}, headers=headers)

    app.router.add_get("/quota/{n}", item)
    base = await serve(app)
    api = HttpConnector(
        "api", ConnectorConfig(kind="http", base_url=base, concurrency=16, on_quota=on_quota)
    )
    pipeline = Pipeline(
        name="quota",
        stages=[
            Fetch(name="f", connector="api", for_each={"range": [0, 30]}, path="/quota/{value}"),
            Store(name="save", table="items", key=["id"]),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url)
    assert result.status == "partial", result.run.error
    stage = result.stats.stages["f"]
    assert len(seen) == len(set(seen))  # nothing was sent twice
    assert (result.run.requests, result.run.retries) == (len(seen), 0)
    assert stage.requests == len(seen)  # sent, whatever the answer
    assert result.run.stored == 10
    assert stage.stopped == 30 - 10  # every item not stored was stopped, once
