"""The daemon's HTTP endpoint: health, status, metrics, the control API, and (mounted by
``web``) the status page.

Every request passes ``Access`` (``_access``): the Host and Origin checks, and a token for
writes. The control API answers JSON; a form post from the page (``next`` field) is
answered with a redirect to ``next`` instead, so the page works without JavaScript.

    POST /reload                              re-read the config
    POST /api/pipelines/{name}/trigger        {params, idempotency_key, trigger} → run id
    POST /api/pipelines/{name}/backfill       {from, to, concurrency} → slots queued
    POST /api/pipelines/{name}/pause|resume   {reason}
    POST /api/runs/{id}/cancel
    POST /api/alerts/{name}/mute|unmute       {for, reason}
    GET  /api/runs/{id}/progress              NDJSON, one line per half second, to the end
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import anyio
import orjson
from aiohttp import web
from anyio.abc import TaskStatus

from podium.pipeline import ConfigError

from ._access import COOKIE, Access, session_value
from ._models import SchedulerSettings
from ._operations import OperationError, Operations, parse_time

StatusFn = Callable[[], Awaitable[dict[str, Any]]]
MetricsFn = Callable[[], bytes]
ReloadFn = Callable[[], Awaitable[str | None]]  # None: reloaded; else why not
PagesFn = Callable[[web.Application, "Endpoint"], None]
ACCESS = web.AppKey("access", object)


class Endpoint:
    """``instance`` is the daemon's token: /status shows it and ``POST /reload?instance=``
    must match it, so a client acting on a stale runtime file cannot reach another daemon."""

    def __init__(
        self,
        settings: SchedulerSettings,
        *,
        instance: str,
        status: StatusFn,
        metrics: MetricsFn,
        reload: ReloadFn,
        operations: Operations | None = None,
        pages: PagesFn | None = None,
    ) -> None:
        self.settings = settings
        self.host, self.port, self.instance = settings.host, settings.port, instance
        self._status, self._metrics, self._reload = status, metrics, reload
        self.operations = operations
        self._pages = pages
        self.access: Access | None = (
            Access.for_endpoint(settings, settings.port) if settings.port else None
        )

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/status", self._status_view)
        app.router.add_get("/metrics", self._metrics_view)
        app.router.add_post("/reload", self._reload_view)
        app.router.add_get("/login", self._login_form)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)
        if self.operations is not None:
            api = "/api/pipelines/{name}/"
            app.router.add_post(api + "trigger", self._trigger)
            app.router.add_post(api + "backfill", self._backfill)
            app.router.add_post(api + "pause", self._pause)
            app.router.add_post(api + "resume", self._resume)
            app.router.add_post("/api/runs/{run_id}/cancel", self._cancel)
            app.router.add_get("/api/runs/{run_id}/progress", self._progress)
            app.router.add_post("/api/alerts/{name}/mute", self._mute)
            app.router.add_post("/api/alerts/{name}/unmute", self._unmute)
        if self._pages is not None:
            self._pages(app, self)
        return app

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]
    ) -> web.StreamResponse:
        access = self.access
        if access is None:  # bound to port 0 and not told the port yet: a moment only
            return web.json_response({"error": "starting"}, status=503)
        return await access.check(request, handler)

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status`` gets the bound port."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]
            if self.access is None:
                self.access = Access.for_endpoint(self.settings, self.port)
            task_status.started(self.port)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await runner.cleanup()

    # -- reads ---------------------------------------------------------------------------
    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _status_view(self, _request: web.Request) -> web.Response:
        return web.json_response(await self._status())

    async def _metrics_view(self, _request: web.Request) -> web.Response:
        from ._metrics import CONTENT_TYPE

        return web.Response(body=self._metrics(), headers={"Content-Type": CONTENT_TYPE})

    async def _progress(self, request: web.Request) -> web.StreamResponse:
        assert self.operations is not None
        stream = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await stream.prepare(request)
        try:
            try:
                async for line in self.operations.progress(request.match_info["run_id"]):
                    await stream.write(orjson.dumps(line) + b"\n")
            except OperationError as exc:
                await stream.write(orjson.dumps({"error": str(exc), "done": True}) + b"\n")
            await stream.write_eof()
        except ConnectionResetError:
            pass  # the follower went away (Ctrl-C on --wait): the run goes on, nothing to log
        return stream

    # -- writes --------------------------------------------------------------------------
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

    async def _trigger(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        params = body.get("params") or {}
        if not isinstance(params, dict):
            return _error("params must be an object", 400)
        key = body.get("idempotency_key") or request.headers.get("Idempotency-Key")
        return await self._answer(
            request,
            self._ops().trigger(
                request.match_info["name"],
                params=params,
                idempotency_key=key,
                trigger=str(body.get("trigger") or "api"),
            ),
            status=202,
            redirect=lambda answer: f"/runs/{answer['run_id']}",
        )

    async def _backfill(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        try:
            start = parse_time(str(body.get("from", "")), "from")
            end = parse_time(str(body.get("to", "")), "to")
            concurrency = int(body.get("concurrency") or 1)
        except (ValueError, TypeError, ConfigError) as exc:  # parse_time: a ConfigError
            return _refused(request, str(exc), 400)
        return await self._answer(
            request,
            self._ops().backfill(request.match_info["name"], start, end, concurrency=concurrency),
            status=202,
        )

    async def _pause(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        reason = body.get("reason") or None
        return await self._answer(
            request,
            self._ops().pause(request.match_info["name"], reason=reason, by=_who(request)),
        )

    async def _resume(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(
            request, self._ops().resume(request.match_info["name"], by=_who(request))
        )

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(
            request, self._ops().cancel(request.match_info["run_id"]), status=202
        )

    async def _mute(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        return await self._answer(
            request,
            self._ops().mute(
                request.match_info["name"],
                duration=str(body.get("for") or "1h"),
                reason=body.get("reason") or None,
                by=_who(request),
            ),
        )

    async def _unmute(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, self._ops().unmute(request.match_info["name"]))

    def _ops(self) -> Operations:
        assert self.operations is not None
        return self.operations

    async def _answer(
        self,
        request: web.Request,
        work: Awaitable[dict[str, Any]],
        *,
        status: int = 200,
        redirect: Callable[[dict[str, Any]], str] | None = None,
    ) -> web.StreamResponse:
        try:
            answer = await work
        except OperationError as exc:
            return _refused(request, str(exc), exc.status)
        target = request.get("podium_next")
        if isinstance(target, str):
            raise web.HTTPSeeOther(redirect(answer) if redirect else target)
        return web.json_response(answer, status=status)

    # -- the browser's session -----------------------------------------------------------
    async def _login_form(self, request: web.Request) -> web.Response:
        target = html.escape(_local_path(request.query.get("next")), quote=True)
        failed = request.query.get("failed") is not None
        note = "<p class=error>That token is not right.</p>" if failed else ""
        page = _LOGIN.format(next=target, note=note)
        return web.Response(text=page, content_type="text/html")

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        token = str(form.get("token", ""))
        target = _local_path(str(form.get("next", "/")))
        access = self.access
        assert access is not None
        if not token or access.token_level(token) is None:
            raise web.HTTPSeeOther(f"/login?failed=1&next={target}")
        response = web.HTTPSeeOther(target)
        response.set_cookie(
            COOKIE,
            session_value(token),
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            path="/",
        )
        raise response

    async def _logout(self, _request: web.Request) -> web.StreamResponse:
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response


async def _body(request: web.Request) -> dict[str, Any]:
    """A JSON object, or a form (the page's buttons): a form's ``next`` field asks for a
    redirect there instead of a JSON answer."""
    if request.content_type == "application/json":
        try:
            data = await request.json(loads=orjson.loads)
        except ValueError:
            raise web.HTTPBadRequest(text='{"error": "the body is not JSON"}') from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text='{"error": "the body must be a JSON object"}')
        return data
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if "next" in form:
            request["podium_next"] = _local_path(form.pop("next"))
        if "params" in form:
            try:
                form["params"] = orjson.loads(form["params"]) if form["params"] else {}
            except orjson.JSONDecodeError:
                raise web.HTTPBadRequest(text='{"error": "params is not JSON"}') from None
        return form
    return {}


def _local_path(target: str | None) -> str:
    """Only a path on this site: ``next`` must not send the browser elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _who(request: web.Request) -> str | None:
    agent = request.headers.get("User-Agent", "")
    via = "podium-cli" if agent.startswith("podium") else "http"
    return f"{via}@{request.remote}"


def _refused(request: web.Request, message: str, status: int) -> web.Response:
    """An operation that could not be done: JSON for the API; for a form from the page
    (``next``), back to that page with the reason, which the page shows."""
    target = request.get("podium_next")
    if isinstance(target, str):
        joiner = "&" if "?" in target else "?"
        raise web.HTTPSeeOther(f"{target}{joiner}{urlencode({'error': message})}")
    return _error(message, status)


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


_LOGIN = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>podium · sign in</title>
<meta name=viewport content="width=device-width, initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input{{font:inherit;width:100%;padding:.5rem;margin:.5rem 0}}.error{{color:#b00}}</style>
</head><body><h1>podium</h1>{note}
<form method=post action=/login>
<label>Token <input type=password name=token autocomplete=current-password autofocus></label>
<input type=hidden name=next value="{next}">
<button type=submit>Sign in</button></form>
<p>The token is the daemon's <code>[scheduler] token</code>.</p></body></html>
"""
