"""Requests and responses as plain data: what connectors describe and parse.

Connectors never touch a socket. They build ``Request`` objects and read ``Response``
objects; the orchestrator turns one into the other through its transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from podium.pipeline import ResponseError

from . import _json

_DEFAULT_PORTS = {"http": 80, "https": 443}
EXCERPT_BYTES = 200


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL, with the scheme's default port made explicit.

    Credentials are scoped to an origin: links and redirects to another one go without
    them (or not at all), however the URL spells the port.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ResponseError(f"{url!r} is not a valid URL") from None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port if port is not None else _DEFAULT_PORTS.get(scheme, '')}"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    params: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    # A form-encoded body (OAuth2 token requests, login forms); ``json`` and ``form`` exclude
    # each other.
    form: Mapping[str, str] | None = None
    # Ask for a streamed body: a 2xx answer arrives with ``Response.stream`` to read in
    # chunks instead of ``body`` (other answers, and transports that cannot stream, are
    # read whole as always). Set by the engine for formats it reads as they arrive.
    stream: bool = False

    def with_params(self, **params: Any) -> Request:
        return replace(self, params={**self.params, **params})

    def to_json(self) -> dict[str, Any]:
        """The request as JSON-able data (a checkpoint or a dead letter keeps it so)."""
        return {
            "method": self.method,
            "url": self.url,
            "params": dict(self.params),
            "headers": dict(self.headers),
            "json": self.json,
            "form": dict(self.form) if self.form is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Request:
        return cls(
            str(data["method"]),
            str(data["url"]),
            dict(data.get("params") or {}),
            dict(data.get("headers") or {}),
            data.get("json"),
            data.get("form"),
        )

    def with_headers(self, **headers: str) -> Request:
        return replace(self, headers={**self.headers, **headers})


_UNREAD = object()


class BodyStream(Protocol):
    """A body still on the wire: ``chunks`` yields it as it arrives (once), ``aclose``
    gives the connection back. Whoever reads the response owns closing it."""

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Response:
    """A response with its whole body; ``json()`` decodes once, on first use.

    Or, when the request asked for it and the transport can, a 2xx response whose body
    is still arriving: ``body`` is empty and ``stream`` yields it (see ``BodyStream``).

    ``links`` holds the ``Link`` header's targets by relation (``rel="next"`` → URL),
    parsed by the transport; ``certificate`` the TLS peer certificate's expiry, for
    HTTPS; ``attempts`` how many attempts the gateway made for it; ``action`` the response
    rule that made it final despite its status (``success``, ``ignore``), else None.
    """

    __slots__ = (
        "_json",
        "action",
        "attempts",
        "body",
        "certificate",
        "elapsed",
        "headers",
        "links",
        "redirects",
        "request",
        "status",
        "stream",
        "url",
    )

    def __init__(
        self,
        request: Request,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        url: str,
        elapsed: float,
        *,
        links: Mapping[str, str] | None = None,
        certificate: Mapping[str, Any] | None = None,
        stream: BodyStream | None = None,
    ) -> None:
        self.request = request
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url
        self.elapsed = elapsed
        self.links: Mapping[str, str] = links or {}
        self.certificate = certificate
        self.stream = stream
        self.attempts = 1
        self.redirects = 0
        self.action: str | None = None
        self._json: Any = _UNREAD

    def json(self) -> Any:
        if self._json is _UNREAD:
            try:
                self._json = _json.loads(self.body)
            except _json.JSONDecodeError as exc:
                raise ResponseError(
                    f"response is not JSON ({exc.msg}); it starts with {self.excerpt(60)!r}"
                ) from None
        return self._json

    def excerpt(self, limit: int = EXCERPT_BYTES) -> str:
        """The start of the body as text, for error messages (callers redact it)."""
        text = self.body[:limit].decode("utf-8", "replace")
        return text + ("…" if len(self.body) > limit else "")

    def body_value(self) -> Any:
        """The body as a check reads it: parsed JSON, else text, else None when empty."""
        if not self.body:
            return None
        try:
            return self.json()
        except ResponseError:
            return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"
