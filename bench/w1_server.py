"""Local JSON server for the benchmarks: W1 (5,000 pages x 20 records), W2 (a 500-page
next-URL chain of 20 records each) and the start-up benchmark's one-record page.

Run in its own process so its CPU time is never charged to the client being measured:

    python bench/w1_server.py --port 0      # first stdout line: "PORT <n>"

Routes:
    GET  /items/{page}          page 0..4999, body precomputed for the current generation
    GET  /items/{page}?round=N  the same page as generation N (built on demand; for ad-hoc checks)
    GET  /chain/{n}             W2: n 0..499, records n*20..n*20+19 and "next": "/chain/{n+1}"
                                (no "next" on the last page); ?round=N as above, kept in "next"
    GET  /one                   {"items": [{"id": 1}]}: the start-up benchmark's one request
    GET  /_generation           {"generation": N}
    POST /_generation[?set=N]   move to generation N (default: current + 1), rebuild all bodies

The generation changes every record's ``value`` and ``updated_at``, so a second run against the
same database really has to update rows rather than find them unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

PAGES = 5_000
PER_PAGE = 20
TOTAL_ROWS = PAGES * PER_PAGE
# W2 reuses W1's records (ids 0..9,999), so both are verified by the same record() function.
CHAIN_PAGES = 500
CHAIN_ROWS = CHAIN_PAGES * PER_PAGE
ONE_BODY = orjson.dumps({"items": [{"id": 1}]})

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def record(item_id: int, generation: int) -> dict[str, Any]:
    """One record as the server sends it; run_w1.py uses this to verify stored rows."""
    # Non-round floats, so a transform that truncated or stringified them would show up.
    value = round((item_id * 0.37 + generation * 1.618) % 10_000, 4)
    stamp = _EPOCH + timedelta(minutes=generation, seconds=item_id)
    return {
        "id": item_id,
        "name": f"item-{item_id}",
        "value": value,
        "updated_at": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def page_body(page: int, generation: int) -> bytes:
    items = [record(page * PER_PAGE + j, generation) for j in range(PER_PAGE)]
    return orjson.dumps({"page": page, "items": items})


def chain_body(page: int, generation: int, query: str = "") -> bytes:
    """Page ``page`` of the W2 chain; the link to the next page keeps ``query`` (?round=N)."""
    items = [record(page * PER_PAGE + j, generation) for j in range(PER_PAGE)]
    body: dict[str, Any] = {"page": page, "items": items}
    if page + 1 < CHAIN_PAGES:
        body["next"] = f"/chain/{page + 1}{query}"
    return orjson.dumps(body)


class Pages:
    """Holds the precomputed bodies of the current generation."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.bodies: list[bytes] = []
        self.chain: list[bytes] = []
        self.rebuild(generation)

    def rebuild(self, generation: int) -> None:
        # Built up front (~0.2 s) so serving a request is a list lookup, not JSON encoding.
        self.bodies = [page_body(p, generation) for p in range(PAGES)]
        self.chain = [chain_body(p, generation) for p in range(CHAIN_PAGES)]
        self.generation = generation


PAGES_KEY = web.AppKey("pages", Pages)


def _page_number(request: web.Request, pages: int = PAGES) -> int:
    try:
        page = int(request.match_info["page"])
    except ValueError:
        raise web.HTTPNotFound(text="page must be an integer") from None
    if not 0 <= page < pages:
        raise web.HTTPNotFound(text=f"page must be in 0..{pages - 1}")
    return page


def _round(request: web.Request) -> int | None:
    round_arg = request.query.get("round")
    if round_arg is None:
        return None
    try:
        return int(round_arg)
    except ValueError:
        raise web.HTTPBadRequest(text="round must be an integer") from None


async def get_items(request: web.Request) -> web.Response:
    pages = request.app[PAGES_KEY]
    page = _page_number(request)
    generation = _round(request)
    body = pages.bodies[page] if generation is None else page_body(page, generation)
    return web.Response(body=body, content_type="application/json")


async def get_chain(request: web.Request) -> web.Response:
    pages = request.app[PAGES_KEY]
    page = _page_number(request, CHAIN_PAGES)
    generation = _round(request)
    if generation is None:
        body = pages.chain[page]
    else:
        body = chain_body(page, generation, f"?round={generation}")
    return web.Response(body=body, content_type="application/json")


async def get_one(request: web.Request) -> web.Response:
    return web.Response(body=ONE_BODY, content_type="application/json")


async def get_generation(request: web.Request) -> web.Response:
    pages = request.app[PAGES_KEY]
    return web.json_response({"generation": pages.generation})


async def set_generation(request: web.Request) -> web.Response:
    pages = request.app[PAGES_KEY]
    wanted = request.query.get("set")
    try:
        generation = pages.generation + 1 if wanted is None else int(wanted)
    except ValueError:
        raise web.HTTPBadRequest(text="set must be an integer") from None
    # Blocking on purpose: the caller must not start a run until every body is rebuilt.
    pages.rebuild(generation)
    return web.json_response({"generation": generation})


def make_app(generation: int) -> web.Application:
    app = web.Application()
    app[PAGES_KEY] = Pages(generation)
    app.router.add_get("/items/{page}", get_items)
    app.router.add_get("/chain/{page}", get_chain)
    app.router.add_get("/one", get_one)
    app.router.add_get("/_generation", get_generation)
    app.router.add_post("/_generation", set_generation)
    return app


async def serve(port: int, generation: int) -> None:
    app = make_app(generation)
    # No access log: logging 10,000 lines per round would cost more CPU than serving them.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
        await site.start()
        bound = runner.addresses[0][1]
        # The harness reads exactly this line to learn the ephemeral port.
        print(f"PORT {bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 = pick an ephemeral port")
    parser.add_argument(
        "--generation",
        type=int,
        default=None,
        help="data generation at start (default: derived from the start time)",
    )
    args = parser.parse_args(argv)
    # Default differs per server start, so a restarted server also serves changed values.
    generation = args.generation if args.generation is not None else int(time.time()) % 100_000
    asyncio.run(serve(args.port, generation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
