"""The status page's routes: each page as HTML (Jinja2, rendered here) or as JSON.

    GET /                      overview            /.json
    GET /pipelines/{name}      a pipeline          /pipelines/{name}.json   ?page=N
    GET /runs/{id}             a run (id prefix)   /runs/{id}.json
    GET /alerts                alerts              /alerts.json
    GET /static/{file}         the stylesheet

A page answers JSON for a ``.json`` suffix, or when ``Accept`` asks for
``application/json`` and not for HTML; the JSON is the same document the template
renders, so the two cannot disagree. The endpoint's ``Access`` has already let the
request in (a read, with a session where reads need one); whether to show the buttons
is ``Access.can_write`` — the buttons post forms to the control API, which checks again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from podium.pipeline import PodiumError

from . import _charts as charts
from ._alerts import alerts_page
from ._format import FILTERS
from ._overview import overview
from ._pipeline import pipeline_page
from ._run import run_page
from ._sources import NotFound, Sources

if TYPE_CHECKING:
    from .._http import Endpoint

Document = dict[str, Any]
STATIC = {"podium.css": "text/css"}
# A page refreshes itself this often (seconds) — by script, which waits while a form is
# being filled in; without script, by <meta http-equiv=refresh> at the slower pace.
REFRESH = {"overview": 10, "pipeline": 15, "run": 5, "alerts": 20}


class StatusPages:
    """Mount with ``Endpoint(..., pages=StatusPages(sources).mount)``."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.env = Environment(
            loader=PackageLoader("podium.jobs.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(FILTERS)
        self.env.globals["charts"] = charts
        folder = resources.files("podium.jobs.web") / "static"
        self.static = {name: (folder / name).read_bytes() for name in STATIC}
        self._endpoint: Endpoint | None = None

    def mount(self, app: web.Application, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        app.router.add_get("/", self._overview)
        app.router.add_get("/.json", self._overview)
        app.router.add_get("/pipelines/{name}", self._pipeline)
        app.router.add_get("/runs/{run_id}", self._run)
        app.router.add_get("/alerts", self._alerts)
        app.router.add_get("/alerts.json", self._alerts)
        app.router.add_get("/static/{file}", self._static)

    # -- pages -----------------------------------------------------------------------------
    async def _overview(self, request: web.Request) -> web.StreamResponse:
        return await self._page(request, "overview", lambda now: overview(self.sources, now))

    async def _pipeline(self, request: web.Request) -> web.StreamResponse:
        name, as_json = _suffix(request.match_info["name"])
        try:
            page = int(request.query.get("page", "1"))
        except ValueError:
            page = 1
        return await self._page(
            request,
            "pipeline",
            lambda now: pipeline_page(self.sources, name, page, now),
            as_json=as_json,
        )

    async def _run(self, request: web.Request) -> web.StreamResponse:
        run_id, as_json = _suffix(request.match_info["run_id"])
        return await self._page(
            request, "run", lambda now: run_page(self.sources, run_id, now), as_json=as_json
        )

    async def _alerts(self, request: web.Request) -> web.StreamResponse:
        return await self._page(request, "alerts", lambda now: alerts_page(self.sources, now))

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        if name not in self.static:
            raise web.HTTPNotFound()
        return web.Response(
            body=self.static[name],
            content_type=STATIC[name],
            headers={"Cache-Control": "max-age=300"},
        )

    # -- rendering -------------------------------------------------------------------------
    async def _page(
        self,
        request: web.Request,
        template: str,
        build: Callable[[datetime], Awaitable[Document]],
        *,
        as_json: bool = False,
    ) -> web.StreamResponse:
        as_json = as_json or request.path.endswith(".json") or _prefers_json(request)
        now = datetime.now(UTC)
        try:
            document = await build(now)
        except NotFound as exc:
            return self._problem(request, as_json, 404, str(exc), now)
        except PodiumError as exc:  # the database is away, or a table is unreadable
            return self._problem(request, as_json, 503, str(exc), now)
        if as_json:
            return _json(document)
        html = self.env.get_template(f"{template}.html").render(
            doc=document,
            now=now,
            page=template,
            refresh=REFRESH[template],
            can_write=self._can_write(request),
            signed_in=self._signed_in(request),
            here=request.path_qs,
            error=request.query.get("error"),
        )
        return web.Response(text=html, content_type="text/html", headers=_NO_STORE)

    def _problem(
        self, request: web.Request, as_json: bool, status: int, message: str, now: datetime
    ) -> web.Response:
        if as_json:
            return _json({"error": message}, status)
        html = self.env.get_template("problem.html").render(
            status=status,
            message=message,
            now=now,
            page="problem",
            refresh=0,
            can_write=False,
            signed_in=self._signed_in(request),
            here=request.path_qs,
            error=None,
            doc={"node": self.sources.node_id},
        )
        return web.Response(text=html, status=status, content_type="text/html")

    def _can_write(self, request: web.Request) -> bool:
        access = self._endpoint.access if self._endpoint is not None else None
        return access is not None and access.can_write(request)

    def _signed_in(self, request: web.Request) -> bool:
        access = self._endpoint.access if self._endpoint is not None else None
        return access is not None and access.level(request) is not None


# Pages show live state: a browser's back button must not bring back an old one.
_NO_STORE = {"Cache-Control": "no-store"}


def _suffix(value: str) -> tuple[str, bool]:
    """``x.json`` → (``x``, True). Pipeline names and run ids hold no dot."""
    return (value[:-5], True) if value.endswith(".json") else (value, False)


def _prefers_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def _json(document: Document, status: int = 200) -> web.Response:
    body = orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS)
    return web.Response(
        body=body, status=status, content_type="application/json", headers=_NO_STORE
    )
