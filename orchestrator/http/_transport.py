"""The transport seam: how one request becomes one response.

The gateway decides everything about a request — limits, retries, redirects, which
credentials go where — and hands the transport a request that is final: URL, query,
headers, body. A transport only performs the exchange (httpx's
``AsyncBaseTransport.handle_async_request`` is the model):

- ``AiohttpTransport`` is production: one ``aiohttp.ClientSession`` per connector (its own
  cookie jar and connection pool), aiohttp's exceptions translated into podium's tree
  here, at the boundary, so nothing above ever sees an aiohttp class.
- ``MockTransport`` answers from a function, in memory, with no socket: the test double
  for users and plugin authors (``podium.testing``);
- ``RecordingTransport`` and ``PlaybackTransport`` (``_recording.py``) write a real
  transport's exchanges to a cassette and serve a run from one.

Redirects are never followed by a transport (the gateway follows them under its origin
rule), and a transport never retries: aiohttp's own silent one-shot re-send is switched
off, so every attempt the gateway counts is one exchange.
"""

from __future__ import annotations

import inspect
import os
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import orjson

from podium.connectors import Request, Response
from podium.pipeline import (
    ConnectError,
    DNSError,
    RequestError,
    RequestTimeout,
    ResponseError,
    TLSError,
)

if TYPE_CHECKING:
    import aiohttp

    from podium.connectors import ConnectorConfig

    from .._redact import Redactor


class Transport(ABC):
    """Performs exchanges for one connector; an async context manager owning its pools."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:  # noqa: B027 - a transport without resources closes nothing
        """Close every connection this transport holds."""

    def redact_with(self, redactor: Redactor) -> None:  # noqa: B027 - most need no redactor
        """Called by the gateway before the first exchange with the run's redactor, which
        knows the run's secrets and learns each credential the gateway obtains. A transport
        that writes exchanges down masks them with it; the others ignore it."""

    @abstractmethod
    async def send(self, request: Request, *, cookies: bool = True) -> Response:
        """One exchange. ``cookies=False`` sends without the connector's cookie jar (a hop to
        another origin). Raises a ``TransportError`` when no response arrived."""


def _query(params: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    if not params:
        return None
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        elif isinstance(value, list | tuple):
            out.extend((key, str(v)) for v in value)
        else:
            out.append((key, str(value)))
    return out


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _certificate(ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
    """The peer certificate's expiry, as a response check reads it (``certificate.*``)."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    expires: datetime | None = None
    if cert and "notAfter" in cert:
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(str(cert["notAfter"])), UTC)
    else:  # verification is off: the dict form is empty, the DER form is still there
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            from cryptography import x509

            expires = x509.load_der_x509_certificate(der).not_valid_after_utc
    if expires is None:
        return None
    seconds = (expires - datetime.now(UTC)).total_seconds()
    return {"expires_at": expires.isoformat(), "expires_in_days": round(seconds / 86400, 3)}


class AiohttpTransport(Transport):
    """Production exchanges over aiohttp: a session (cookies, pool) per connector."""

    def __init__(self, config: ConnectorConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        # Hops to another origin go without the connector's cookies: a session of their own.
        self._bare: aiohttp.ClientSession | None = None

    def _new_session(self, *, cookies: bool) -> aiohttp.ClientSession:
        import aiohttp

        cfg = self._config
        session = aiohttp.ClientSession(
            # unsafe=True keeps cookies from IP-address hosts (internal APIs, 127.0.0.1);
            # each connector still has a jar of its own.
            cookie_jar=aiohttp.CookieJar(unsafe=True) if cookies else aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(
                limit=cfg.concurrency, limit_per_host=0, ssl=_ssl_context(cfg)
            ),
            timeout=aiohttp.ClientTimeout(total=cfg.timeout, sock_connect=cfg.connect_timeout),
            json_serialize=_json_dumps,
            raise_for_status=False,
        )
        # aiohttp quietly re-sends an idempotent request once when a kept-alive connection
        # turns out closed. podium's retry policy covers that case, counted and with
        # backoff; two layers would make attempts (and the limits built on them) lie.
        if not hasattr(session, "_retry_connection"):
            raise RuntimeError("aiohttp changed: ClientSession._retry_connection is gone")
        session._retry_connection = False
        return session

    async def aclose(self) -> None:
        for session in (self._session, self._bare):
            if session is not None:
                await session.close()
        self._session = self._bare = None

    async def send(self, request: Request, *, cookies: bool = True) -> Response:
        if cookies:
            session = self._session = self._session or self._new_session(cookies=True)
        else:
            session = self._bare = self._bare or self._new_session(cookies=False)
        if request.stream:
            return await self._open_stream(session, request)
        started = time.perf_counter()
        answered = False  # the status line and headers arrived: a connection was made
        try:
            async with session.request(
                request.method,
                request.url,
                params=_query(request.params),
                headers=dict(request.headers) if request.headers else None,
                json=request.json,
                data=request.form,
                allow_redirects=False,
            ) as resp:
                answered = True
                tls = _ssl_object(resp) if request.url.startswith("https") else None
                body = await resp.read()
                links = _aiohttp_links(resp) if "Link" in resp.headers else None
        except _failures() as exc:
            raise _translated(exc, request, started, answered) from None
        elapsed = time.perf_counter() - started
        return Response(
            request,
            resp.status,
            resp.headers,
            body,
            str(resp.url),
            elapsed,
            links=links,
            certificate=_certificate(tls),
        )

    async def _open_stream(self, session: aiohttp.ClientSession, request: Request) -> Response:
        """A 2xx answer with its body left on the wire (``Response.stream``); any other
        status is read whole, as ``send`` reads it. The session's total timeout would cut
        a long download off: a streamed body has ``timeout`` seconds between chunks."""
        import aiohttp

        cfg = self._config
        started = time.perf_counter()
        answered = False
        stream: _AiohttpBody | None = None
        try:
            resp = await session.request(
                request.method,
                request.url,
                params=_query(request.params),
                headers=dict(request.headers) if request.headers else None,
                json=request.json,
                data=request.form,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=cfg.connect_timeout, sock_read=cfg.timeout
                ),
            )
            answered = True
            try:
                tls = _ssl_object(resp) if request.url.startswith("https") else None
                links = _aiohttp_links(resp) if "Link" in resp.headers else None
                if 200 <= resp.status < 300:
                    body, stream = b"", _AiohttpBody(resp, request, cfg.timeout)
                else:
                    body = await resp.read()
            finally:
                if stream is None:
                    resp.release()
        except _failures() as exc:
            raise _translated(exc, request, started, answered) from None
        return Response(
            request,
            resp.status,
            resp.headers,
            body,
            str(resp.url),
            time.perf_counter() - started,
            links=links,
            certificate=_certificate(tls),
            stream=stream,
        )


STREAM_CHUNK = 256 * 1024


class _AiohttpBody:
    """A 2xx body still on the wire; aiohttp undoes a Content-Encoding as it reads."""

    def __init__(self, resp: aiohttp.ClientResponse, request: Request, timeout: float) -> None:
        self._resp = resp
        self._request = request
        self._timeout = timeout

    async def chunks(self) -> AsyncIterator[bytes]:
        import aiohttp

        try:
            async for chunk in self._resp.content.iter_chunked(STREAM_CHUNK):
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise RequestTimeout(
                f"no data for {self._timeout:g}s while reading the body",
                request=self._request,
                connected=True,
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ConnectError(
                f"connection broken while reading the body: {_reason(exc)}",
                request=self._request,
                connected=True,
            ) from None
        self._resp.release()

    async def aclose(self) -> None:
        # Released already when read to its end; else the connection cannot be reused.
        self._resp.close()


def _failures() -> tuple[type[BaseException], ...]:
    import aiohttp

    return (TimeoutError, aiohttp.ClientError, ValueError)


def _translated(
    exc: BaseException, request: Request, started: float, answered: bool
) -> RequestError:
    """aiohttp's exception as podium's, at the boundary (nothing above sees aiohttp)."""
    import aiohttp

    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        waited = time.perf_counter() - started
        connected = answered or isinstance(exc, aiohttp.SocketTimeoutError)
        phase = "connecting" if isinstance(exc, aiohttp.ConnectionTimeoutError) else None
        return RequestTimeout(
            f"timed out{' ' + phase if phase else ''} ({waited:.1f}s)",
            request=request,
            connected=connected,
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return DNSError(f"cannot resolve {exc.host}", request=request, connected=False)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TLSError(
            f"certificate rejected: {_reason(exc.certificate_error)}",
            request=request,
            connected=False,
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        return TLSError(f"TLS failed: {_reason(exc)}", request=request, connected=False)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(
            f"cannot connect to {exc.host}:{exc.port}: {_reason(exc.os_error)}",
            request=request,
            connected=False,
        )
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return ConnectError(
            f"connection broken: {_reason(exc)}", request=request, connected=answered
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return RequestError(f"invalid URL {request.url!r}", request=request)
    if isinstance(exc, aiohttp.ClientResponseError):
        # Something answered, but not with HTTP podium can read.
        return ResponseError(f"not a valid HTTP answer: {exc.message}", request=request)
    if isinstance(exc, ValueError):
        # aiohttp refuses header values with CR/LF (request smuggling): data put them there.
        return RequestError(f"request not sent: {_reason(exc)}", request=request)
    # Another aiohttp.ClientError (none is raised today): still no traceback upward.
    return RequestError(f"request failed: {_reason(exc)}", request=request)


def _ssl_object(resp: aiohttp.ClientResponse) -> ssl.SSLObject | None:
    # A small body arrives with the headers, and aiohttp hands the connection back to
    # its pool before the caller sees the response (``resp.connection`` is None then):
    # the response's protocol still holds the TLS transport. Measured, aiohttp 3.x.
    protocol = resp.connection.protocol if resp.connection is not None else None
    protocol = protocol or getattr(resp, "_protocol", None)
    transport = getattr(protocol, "transport", None)
    return transport.get_extra_info("ssl_object") if transport is not None else None


def _aiohttp_links(resp: aiohttp.ClientResponse) -> dict[str, str]:
    """aiohttp's parse of the ``Link`` header, by relation (``rel="next prev"`` gives both)."""
    return {rel: str(link["url"]) for key, link in resp.links.items() for rel in str(key).split()}


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown reason"
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return exc.verify_message
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()  # "connection refused", not the call's repr
    text = getattr(exc, "strerror", None) or str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _ssl_context(cfg: ConnectorConfig) -> ssl.SSLContext | bool:
    tls = cfg.tls
    if tls.verify and tls.ca_file is None:
        return True  # aiohttp's default context: the system's trust store
    context = ssl.create_default_context(cafile=tls.ca_file)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# -- in memory ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MockReply:
    """What a ``MockTransport`` handler answers; see ``reply``."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    elapsed: float = 0.0


def reply(
    status: int = 200,
    *,
    json: Any = None,
    text: str | None = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    elapsed: float = 0.0,
) -> MockReply:
    """An answer for ``MockTransport``: give one of ``json``, ``text`` or ``body``."""
    out_headers = dict(headers or {})
    if json is not None:
        payload = orjson.dumps(json)
        out_headers.setdefault("Content-Type", "application/json")
    elif text is not None:
        payload = text.encode()
        out_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
    else:
        payload = body or b""
    return MockReply(status, payload, out_headers, elapsed)


Handler = Callable[[Request], "MockReply | Awaitable[MockReply]"]


class MockTransport(Transport):
    """Answers every request from ``handler(request)`` in memory: no socket is opened.

    The handler may be sync or async, and may raise a podium ``TransportError`` (for
    example ``RequestTimeout``) to act out a network failure. ``requests`` lists every
    request it received, in order.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[Request] = []

    async def send(self, request: Request, *, cookies: bool = True) -> Response:
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, MockReply):
            raise TypeError(f"a MockTransport handler must return reply(...), got {answer!r}")
        url = request.url
        if request.params:
            from urllib.parse import urlencode

            url = f"{url}{'&' if '?' in url else '?'}{urlencode(_query(request.params) or [])}"
        headers = _header_map(answer.headers)
        return Response(
            request,
            answer.status,
            headers,
            answer.body,
            url,
            answer.elapsed,
            links=_links(headers, url),
        )


def _header_map(headers: Mapping[str, str]) -> Mapping[str, str]:
    from multidict import CIMultiDict, CIMultiDictProxy

    return CIMultiDictProxy(CIMultiDict(headers))


def _links(headers: Mapping[str, str], url: str) -> dict[str, str]:
    """``Link`` relations by rel, for exchanges that never passed through aiohttp.

    aiohttp parses the header for real responses; replies written by hand or read from a
    cassette go through the same rules (split before each ``<``, ``rel`` per link).
    """
    from urllib.parse import urljoin

    raw = headers.get("Link")
    out: dict[str, str] = {}
    if not raw:
        return out
    for part in raw.split(",<"):
        target, _, params = part.strip().lstrip("<").partition(">")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "rel":
                for rel in value.strip('"').split():
                    out.setdefault(rel, urljoin(url, target))
    return out
