"""Who may use the daemon's endpoint, and from where.

Three checks, in this order, for every request but ``/healthz``:

1. **Host** — the ``Host`` header must name the endpoint: its ``public_url``, the address
   it listens on, or (listening on loopback) a loopback name, with its port. A page on
   another site cannot reach it through a DNS name it points at 127.0.0.1 (DNS rebinding).
2. **Origin** — a write whose ``Origin`` (or ``Sec-Fetch-Site``) says another site sent
   it is refused: no cross-site form or fetch can press a button.
3. **Token** — writes (every method but GET/HEAD) need the write token; reads need a
   token when a read token is set, or when the endpoint listens beyond loopback (unless
   ``public_reads``). A token comes as ``Authorization: Bearer …``, or — for the browser —
   as the session cookie ``/login`` sets, which holds a hash of the token, never the token.

Without a configured token the daemon makes one for its lifetime and keeps it only in its
runtime file (mode 0600): the command line on the same machine, as the same user, can
write; nobody else can. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

from aiohttp import web

from ._models import SchedulerSettings

Level = Literal["read", "write"]
COOKIE = "podium_session"
# Paths a browser must reach before it has a session.
_OPEN_PATHS = frozenset({"/healthz", "/login", "/logout"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_value(token: str) -> str:
    return hashlib.sha256(b"podium-session\0" + token.encode()).hexdigest()


@dataclass(frozen=True)
class Access:
    write_token: str
    read_token: str | None
    open_reads: bool
    hosts: frozenset[str]
    origins: frozenset[str]
    # Whether the write token was made by this daemon (none configured).
    ephemeral: bool = False

    @classmethod
    def for_endpoint(cls, settings: SchedulerSettings, port: int) -> Access:
        token = settings.token or secrets.token_urlsafe(32)
        names = {settings.host.lower()}
        if settings.loopback or settings.host in ("0.0.0.0", "::"):
            names |= {"127.0.0.1", "localhost", "[::1]", "::1"}
        if settings.host in ("0.0.0.0", "::"):
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        hosts = {f"{_bracket(n)}:{port}" for n in names}
        origins = {f"http://{h}" for h in hosts}
        if settings.public_url is not None:
            public = urlsplit(settings.public_url)
            default = 443 if public.scheme == "https" else 80
            netloc = public.netloc.rsplit("@", 1)[-1].lower()
            hosts |= {netloc}
            if public.port in (None, default):
                hosts |= {f"{public.hostname}:{default}", str(public.hostname)}
            origins |= {f"{public.scheme}://{netloc}"}
        return cls(
            write_token=token,
            read_token=settings.read_token,
            open_reads=settings.read_token is None and (settings.loopback or settings.public_reads),
            hosts=frozenset(hosts),
            origins=frozenset(origins),
            ephemeral=settings.token is None,
        )

    def token_level(self, presented: str) -> Level | None:
        """What a token allows, or None (compared in constant time)."""
        if hmac.compare_digest(presented.encode(), self.write_token.encode()):
            return "write"
        if self.read_token and hmac.compare_digest(presented.encode(), self.read_token.encode()):
            return "read"
        return None

    def level(self, request: web.Request) -> Level | None:
        """What the request's credential allows, or None."""
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return self.token_level(auth[7:].strip())
        cookie = request.cookies.get(COOKIE)
        if cookie:
            if hmac.compare_digest(cookie, session_value(self.write_token)):
                return "write"
            if self.read_token and hmac.compare_digest(cookie, session_value(self.read_token)):
                return "read"
        return None

    def can_read(self, request: web.Request) -> bool:
        return self.open_reads or self.level(request) is not None

    def can_write(self, request: web.Request) -> bool:
        return self.level(request) == "write"

    async def check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Let ``request`` through to ``handler``, or answer why not (the middleware)."""
        if request.path == "/healthz":
            return await handler(request)
        if request.host.lower() not in self.hosts:
            return _refuse(403, "this endpoint does not answer to that Host")
        write = request.method not in ("GET", "HEAD", "OPTIONS")
        if write and not self._same_site(request):
            return _refuse(403, "a write from another site is refused")
        if request.path in _OPEN_PATHS or request.path.startswith("/static/"):
            return await handler(request)
        allowed = self.can_write(request) if write else self.can_read(request)
        if not allowed:
            if not write and _wants_html(request):
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
            what = "a write token" if write else "a token"
            return _refuse(401, f"{what} is needed (Authorization: Bearer …)")
        return await handler(request)

    def _same_site(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() not in self.origins:
            return False
        return request.headers.get("Sec-Fetch-Site", "same-origin") in (
            "same-origin",
            "none",
        )


def _bracket(name: str) -> str:
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _refuse(status: int, reason: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="podium"'} if status == 401 else None
    return web.json_response({"error": reason}, status=status, headers=headers)
