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
