"""The demo API's operations side, so the monitoring example runs offline too.

- ``GET /health`` answers ``{"status": "ok"}`` — or 503 ``{"status": "down"}``, or slowly
  — as ``POST /chaos?health=down|up|slow`` last said;
- ``POST /webhook`` is a notification sink: it keeps what podium's alerts send (``GET
  /webhook`` lists it) and prints each as one line, so ``podium demo-api`` shows the
  alerts of the monitoring example as they arrive.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

from aiohttp import web

KEPT = 100
SLOW_SECONDS = 1.5

HEALTH = web.AppKey("health", dict)
NOTIFICATIONS = web.AppKey("notifications", list)
SAY = web.AppKey("say", object)


def add_ops_routes(app: web.Application, say: Callable[[str], None] | None = None) -> None:
    app[HEALTH] = {"state": "up", "since": time.time()}
    app[NOTIFICATIONS] = []
    app[SAY] = say or _stderr
    app.add_routes(
        [
            web.get("/health", health),
            web.post("/chaos", chaos),
            web.post("/webhook", receive),
            web.get("/webhook", received),
        ]
    )


async def health(request: web.Request) -> web.Response:
    state = request.app[HEALTH]["state"]
    if state == "down":
        return web.json_response({"status": "down"}, status=503)
    if state == "slow":
        await asyncio.sleep(SLOW_SECONDS)
    uptime = round(time.time() - request.app[HEALTH]["since"], 1)
    return web.json_response({"status": "ok", "uptime_s": uptime})


async def chaos(request: web.Request) -> web.Response:
    wanted = request.query.get("health", "")
    if wanted not in ("up", "down", "slow"):
        return web.json_response({"error": "health= up, down or slow"}, status=400)
    request.app[HEALTH].update(state=wanted, since=time.time())
    return web.json_response({"health": wanted})


async def receive(request: web.Request) -> web.Response:
    try:
        notification = await request.json()
    except ValueError:
        return web.json_response({"error": "expected JSON"}, status=400)
    kept = request.app[NOTIFICATIONS]
    kept.append(notification)
    del kept[:-KEPT]
    if isinstance(notification, dict):
        title = notification.get("title") or notification.get("kind") or "notification"
        cause = notification.get("cause")
        line = f"webhook received: {title}" + (f" — {cause}" if cause else "")
        request.app[SAY](_printable(line))  # type: ignore[operator]
    return web.json_response({"ok": True})


async def received(request: web.Request) -> web.Response:
    return web.json_response(request.app[NOTIFICATIONS])


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
