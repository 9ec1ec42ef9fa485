"""Serving the demo API in a background thread for ``podium demo``.

The demo API runs on its own event loop in its own thread, so the run being
demonstrated measures podium alone; the context manager owns both and stops them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from ._api import demo_app


@contextmanager
def serve_demo_api(host: str = "127.0.0.1") -> Iterator[str]:
    """Yield the base URL of a running demo API; stop it on exit."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(demo_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # reported to the caller below
            state["error"] = exc
        ready.set()
        if "error" not in state:
            loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=serve, name="podium-demo-api", daemon=True)
    thread.start()
    ready.wait(10)
    if "error" in state:
        thread.join(5)
        raise RuntimeError(f"demo API failed to start: {state['error']}")
    try:
        yield f"http://{host}:{state['port']}"
    finally:

        async def stop() -> None:
            await state["runner"].cleanup()  # type: ignore[attr-defined]

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
