"""The daemon's small HTTP endpoint: /healthz, /status (JSON), /metrics, POST /reload."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from aiohttp import web
from anyio.abc import TaskStatus

StatusFn = Callable[[], Awaitable[dict[str, Any]]]
MetricsFn = Callable[[], bytes]
ReloadFn = Callable[[], Awaitable[str | None]]  # None: reloaded; else why not


class Endpoint:
    """``instance`` is the daemon's token: /status shows it and ``POST /reload?instance=``
    must match it, so a client acting on a stale runtime file cannot reach another daemon."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        instance: str,
        status: StatusFn,
        metrics: MetricsFn,
        reload: ReloadFn,
    ) -> None:
        self.host, self.port, self.instance = host, port, instance
        self._status, self._metrics, self._reload = status, metrics, reload

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/status", self._status_view)
        app.router.add_get("/metrics", self._metrics_view)
        app.router.add_post("/reload", self._reload_view)
        return app

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status`` gets the bound port."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]
            task_status.started(self.port)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _status_view(self, _request: web.Request) -> web.Response:
        return web.json_response(await self._status())

    async def _metrics_view(self, _request: web.Request) -> web.Response:
        from ._metrics import CONTENT_TYPE

        return web.Response(body=self._metrics(), headers={"Content-Type": CONTENT_TYPE})

    async def _reload_view(self, request: web.Request) -> web.Response:
        expected = request.query.get("instance")
        if expected is not None and expected != self.instance:
            mismatch = "instance mismatch: this is another daemon than the one asked for"
            return web.json_response({"reloaded": False, "error": mismatch}, status=409)
        error = await self._reload()
        return web.json_response(
            {"reloaded": error is None, "instance": self.instance, "error": error},
            status=200 if error is None else 422,
        )
