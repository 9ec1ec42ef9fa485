"""aiohttp.web apps that tests run on 127.0.0.1; each records what it saw so tests can prove it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Seen:
    """What a test server observed."""

    generation: int = 1  # tests bump it to make the API answer new values
    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    log: list[dict[str, Any]] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def items_app(pages: int, per_page: int = 20, delay: float = 0.0) -> tuple[web.Application, Seen]:
    """``/items/{page}``: ``per_page`` records each; values change with ``seen.generation``."""
    seen = Seen()
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        seen.requests += 1
        seen.in_flight += 1
        seen.max_in_flight = max(seen.max_in_flight, seen.in_flight)
        try:
            if delay:
                await asyncio.sleep(delay)
            page = int(request.match_info["page"])
            if not 0 <= page < pages:
                return web.json_response({"error": "no such page"}, status=404)
            gen = seen.generation
            items = [
                {"id": page * per_page + j, "name": f"item-{page * per_page + j}",
                 "value": (page * per_page + j) * gen, "updated_at": "2026-11-26T08:00:00Z"}
                for j in range(per_page)
            ]  # fmt: skip
            return web.json_response({"page": page, "items": items})
        finally:
            seen.in_flight -= 1

    app.router.add_get("/items/{page}", handler)
    return app, seen


def slow_app(delay: float) -> tuple[web.Application, Seen]:
    """``/slow/{n}``: answers after ``delay`` seconds; tracks concurrency across all paths."""
    seen = Seen()
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        seen.requests += 1
        seen.hits[request.headers.get("X-Client", "?")] += 1
        seen.in_flight += 1
        seen.max_in_flight = max(seen.max_in_flight, seen.in_flight)
        try:
            await asyncio.sleep(delay)
            return web.json_response({"n": int(request.match_info["n"])})
        finally:
            seen.in_flight -= 1

    app.router.add_get("/slow/{n}", handler)
    return app, seen


def flaky_app(failures: int) -> tuple[web.Application, Seen]:
    """``/flaky/{mode}/{n}``: fails ``failures`` times per URL, then answers.

    Modes: ``500``, ``503`` (Retry-After: 1), ``429`` (Retry-After: 1), ``drop`` (closes the
    connection without answering). Each attempt's server time is recorded per URL.
    """
    seen = Seen()
    app = web.Application()

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.requests += 1
        url = request.path
        seen.times[url].append(time.monotonic())
        seen.hits[url] += 1
        mode, n = request.match_info["mode"], int(request.match_info["n"])
        if seen.hits[url] <= failures:
            if mode == "drop":
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)  # never reaches the client
            if mode in ("503", "429"):
                return web.json_response(
                    {"error": "slow down"}, status=int(mode), headers={"Retry-After": "1"}
                )
            return web.json_response({"error": "boom"}, status=int(mode))
        return web.json_response({"items": [{"id": f"{mode}-{n}", "mode": mode, "n": n}]})

    app.router.add_get("/flaky/{mode}/{n}", handler)
    return app, seen


def session_app(items: int, delay: float = 0.0) -> tuple[web.Application, Seen]:
    """A login that sets a per-user session cookie, then per-item work behind it.

    ``/login?user=u`` sets ``session=sess-u`` and answers ``items`` work items for ``u``;
    ``/work/{user}/{n}`` answers one record. Every request's path, ``session`` cookie and
    Authorization header go to ``seen.log``.
    """
    seen = Seen()
    app = web.Application()

    def note(request: web.Request) -> None:
        seen.requests += 1
        seen.log.append(
            {
                "path": request.path,
                "user": request.match_info.get("user") or request.query.get("user"),
                "cookie": request.cookies.get("session"),
                "cookies": dict(request.cookies),
                "authorization": request.headers.get("Authorization"),
            }
        )

    async def login(request: web.Request) -> web.Response:
        note(request)
        user = request.query["user"]
        response = web.json_response({"work": [{"user": user, "n": n} for n in range(items)]})
        response.set_cookie("session", f"sess-{user}", path="/")
        return response

    async def work(request: web.Request) -> web.Response:
        note(request)
        seen.in_flight += 1
        seen.max_in_flight = max(seen.max_in_flight, seen.in_flight)
        try:
            if delay:
                await asyncio.sleep(delay)
            user, n = request.match_info["user"], int(request.match_info["n"])
            return web.json_response({"id": f"{user}-{n}", "user": user, "n": n})
        finally:
            seen.in_flight -= 1

    app.router.add_get("/login", login)
    app.router.add_get("/work/{user}/{n}", work)
    return app, seen


@dataclass
class ClientSeen(Seen):
    """``Seen`` plus in-flight counts per client (the ``X-Client`` request header)."""

    client_in_flight: Counter[str] = field(default_factory=Counter)
    client_max_in_flight: Counter[str] = field(default_factory=Counter)


def inflight_app(delay: float) -> tuple[web.Application, ClientSeen]:
    """``/job/{n}``: answers after ``delay``; tracks in-flight overall and per ``X-Client``."""
    seen = ClientSeen()
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        client = request.headers.get("X-Client", "?")
        seen.requests += 1
        seen.hits[client] += 1
        seen.in_flight += 1
        seen.client_in_flight[client] += 1
        seen.max_in_flight = max(seen.max_in_flight, seen.in_flight)
        seen.client_max_in_flight[client] = max(
            seen.client_max_in_flight[client], seen.client_in_flight[client]
        )
        try:
            await asyncio.sleep(delay)
            return web.json_response({"id": f"{client}-{request.match_info['n']}"})
        finally:
            seen.in_flight -= 1
            seen.client_in_flight[client] -= 1

    app.router.add_get("/job/{n}", handler)
    return app, seen


def status_app() -> tuple[web.Application, Seen]:
    """``/status/{code}/{n}``: always answers ``code`` (``drop`` closes the connection).

    ``200`` answers ``{"items": [{"id": n}]}``; any other code answers an error body.
    Every attempt's server time is recorded per path in ``seen.times``.
    """
    seen = Seen()
    app = web.Application()

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.requests += 1
        seen.times[request.path].append(time.monotonic())
        seen.hits[request.path] += 1
        seen.log.append({"path": request.path, "query": dict(request.query)})
        code, n = request.match_info["code"], int(request.match_info["n"])
        if code == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client
        if code == "200":
            return web.json_response({"items": [{"id": n, "code": code}]})
        return web.json_response({"error": f"status {code}"}, status=int(code))

    app.router.add_get("/status/{code}/{n}", handler)
    return app, seen


def city_app(
    kind: str, data: dict[str, dict[str, Any]], delay: float = 0.0
) -> tuple[web.Application, Seen]:
    """``/{kind}/{city}``: answers ``data[city]`` with ``city`` added, after ``delay``."""
    seen = Seen()
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        seen.requests += 1
        city = request.match_info["city"]
        seen.hits[city] += 1
        if delay:
            await asyncio.sleep(delay)
        if city not in data:
            return web.json_response({"error": f"no {kind} for {city}"}, status=404)
        return web.json_response({"city": city, **data[city]})

    app.router.add_get(f"/{kind}/{{city}}", handler)
    return app, seen
