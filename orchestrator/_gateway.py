"""The one place every outbound request passes: sessions, limits, retries, metrics.

Each connector gets its own ``aiohttp.ClientSession`` per run — its own cookie jar,
headers, auth and connection pool — opened and closed by the gateway. A request takes a
slot from its connector's limiter and from the global limiter for each attempt (never
while it sleeps between attempts), so the number in flight never exceeds either limit.

Retries cover connection errors, timeouts and the policy's statuses (429, 5xx by
default), with exponential backoff and jitter. A ``Retry-After`` on 429/503 pauses the
whole connector until then: the server has said it is overloaded, and every other
request to it would meet the same answer.

Auth flows that need a run-time credential (an OAuth2 token, a login cookie) share one
per channel: the first request that needs it obtains it under the channel's lock while
the others wait for it, so a burst of requests costs one token fetch or one login.
"""

from __future__ import annotations

import random
import time
from contextlib import AsyncExitStack
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import orjson
from loguru import logger

from connectors import Connector, Credential, NeedCredential, Request, Response, RetryPolicy
from pipeline import PluginError, PodiumError, RequestFailed, ResponseError

from ._redact import Redactor
from ._stats import ConnectorStats, RunStats

# Errors that mean "the exchange did not complete": worth another attempt.
_TRANSIENT = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _query_value(value: Any) -> str | int | float:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return value
    return str(value)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ConnectorChannel:
    """One connector's session, limiter and pause state within a run."""

    def __init__(
        self, connector: Connector, session: aiohttp.ClientSession, stats: ConnectorStats
    ) -> None:
        self.connector = connector
        self.session = session
        self.limiter = anyio.CapacityLimiter(connector.config.concurrency)
        self.policy: RetryPolicy = connector.config.retry
        self.stats = stats
        self.paused_until = 0.0
        # Requests go out as built (no per-request auth flow to drive).
        self.direct = not connector.needs_auth_flow()
        # The session's run-time credential; obtained under auth_lock, one at a time.
        self.credential: Credential | None = None
        self.credential_deadline = float("inf")
        self.auth_lock = anyio.Lock()
        # A failed token fetch or login fails every request of the run the same way,
        # instead of being repeated by each of them.
        self.auth_failure: PodiumError | None = None

    def usable_credential(self, need: NeedCredential) -> Credential | None:
        """The current credential, unless it expired or is the one the flow found stale."""
        current = self.credential
        if (
            current is not None
            and current is not need.stale
            and time.monotonic() < self.credential_deadline
        ):
            return current
        return None


class Gateway:
    """Owns every HTTP session of a run; use as ``async with Gateway(...) as gateway``."""

    def __init__(
        self,
        connectors: dict[str, Connector],
        *,
        concurrency: int,
        stats: RunStats,
        redactor: Redactor,
    ) -> None:
        self._connectors = connectors
        self._global = anyio.CapacityLimiter(concurrency)
        self._stats = stats
        self.redact = redactor
        self._channels: dict[str, ConnectorChannel] = {}
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Gateway:
        async with AsyncExitStack() as stack:
            for name, connector in self._connectors.items():
                self.redact.add(connector.secrets())
                cfg = connector.config
                session = aiohttp.ClientSession(
                    headers=connector.session_headers(),
                    # unsafe=True keeps cookies from IP-address hosts (internal APIs,
                    # 127.0.0.1); each connector still has a jar of its own.
                    cookie_jar=aiohttp.CookieJar(unsafe=True),
                    connector=aiohttp.TCPConnector(limit=cfg.concurrency, limit_per_host=0),
                    timeout=aiohttp.ClientTimeout(
                        total=cfg.timeout, sock_connect=cfg.connect_timeout
                    ),
                    json_serialize=_json_dumps,
                    raise_for_status=False,
                )
                # aiohttp quietly re-sends an idempotent request once when a kept-alive
                # connection turns out closed. Podium's own retry policy covers that case,
                # counted and with backoff; two layers would make attempts (and the
                # limits and metrics built on them) lie.
                if not hasattr(session, "_retry_connection"):
                    raise RuntimeError("aiohttp changed: ClientSession._retry_connection is gone")
                session._retry_connection = False
                await stack.enter_async_context(session)
                stats = self._stats.connectors.setdefault(name, ConnectorStats())
                self._channels[name] = ConnectorChannel(connector, session, stats)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Closing sessions must finish even when the run is being cancelled.
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()
        # aiohttp closes transports on the next loop turns; give them those turns.
        await anyio.lowlevel.checkpoint()

    def connector(self, name: str) -> Connector:
        return self._channels[name].connector

    async def send(self, connector_name: str, request: Request) -> Response:
        """Send through the connector's auth flow; returns the final response."""
        channel = self._channels[connector_name]
        if channel.direct:
            response = await self._send_with_retries(channel, request)
            if response.status >= 400:
                channel.stats.failed += 1
                raise self._failed(request, f"HTTP {response.status}", response.status)
            return response
        flow = channel.connector.auth_flow(request)
        response: Response | None = None
        try:
            step = next(flow)
            while True:
                if isinstance(step, NeedCredential):
                    step = flow.send(await self._credential(channel, step))
                else:
                    outgoing = step
                    response = await self._send_with_retries(channel, outgoing)
                    step = flow.send(response)
        except StopIteration:
            pass
        finally:
            flow.close()
        if response is None:
            raise PluginError(
                f"connector {channel.connector.name!r}: its auth flow sent no request"
            )
        if response.status >= 400:
            channel.stats.failed += 1
            raise self._failed(outgoing, f"HTTP {response.status}", response.status)
        return response

    async def _credential(self, channel: ConnectorChannel, need: NeedCredential) -> Credential:
        """The channel's credential: the current one, or a new one obtained exactly once
        however many requests ask at the same moment (single flight)."""
        current = channel.usable_credential(need)
        if current is not None:
            return current
        async with channel.auth_lock:
            # Whoever held the lock before us may have obtained a fresh credential already.
            current = channel.usable_credential(need)
            if current is not None:
                return current
            if channel.auth_failure is not None:
                raise channel.auth_failure
            try:
                credential = await self._obtain(channel)
            except PodiumError as exc:
                channel.auth_failure = exc
                raise
            self.redact.add(credential.secrets)
            channel.credential = credential
            channel.credential_deadline = (
                float("inf")
                if credential.expires_in is None
                else time.monotonic() + credential.expires_in
            )
            return credential

    async def _obtain(self, channel: ConnectorChannel) -> Credential:
        connector = channel.connector
        flow = connector.credential_flow()
        if flow is None:
            raise PluginError(
                f"connector {connector.name!r}: its auth flow asked for a credential, "
                "but it has no credential_flow"
            )
        outgoing: Request | None = None
        try:
            outgoing = next(flow)
            while True:
                response = await self._send_with_retries(channel, outgoing)
                if response.status >= 400:
                    channel.stats.failed += 1
                    raise self._failed(
                        outgoing, f"credential request: HTTP {response.status}", response.status
                    )
                outgoing = flow.send(response)
        except StopIteration as done:
            credential: Credential = done.value
            return credential
        except ResponseError as exc:
            channel.stats.failed += 1
            if outgoing is None:
                raise PluginError(f"connector {connector.name!r}: {exc.message}") from None
            raise self._failed(outgoing, f"credential request: {exc.message}") from None
        finally:
            flow.close()

    async def _take_slots(self, channel: ConnectorChannel) -> None:
        """A slot on the connector's and the global limiter, outside any pause.

        The pause is checked again once the slots are held: requests that were queued on
        a limiter when a 429 arrived must not go out before the server's Retry-After.
        """
        while True:
            delay = channel.paused_until - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
            await _acquire(channel.limiter)
            try:
                await _acquire(self._global)
            except BaseException:
                channel.limiter.release()
                raise
            if channel.paused_until <= time.monotonic():
                return
            self._global.release()
            channel.limiter.release()

    async def _send_with_retries(self, channel: ConnectorChannel, request: Request) -> Response:
        policy = channel.policy
        stats = channel.stats
        for attempt in range(1, policy.attempts + 1):
            try:
                await self._take_slots(channel)
                try:
                    response = await self._send_once(channel, request)
                finally:
                    self._global.release()
                    channel.limiter.release()
            except _TRANSIENT as exc:
                stats.requests += 1
                reason = _describe(exc)
                if attempt == policy.attempts:
                    stats.failed += 1
                    raise self._failed(request, f"{reason} after {attempt} attempts") from None
                stats.retries += 1
                delay = _backoff(policy, attempt)
                logger.debug("retrying {} in {:.2f}s: {}", self._url(request), delay, reason)
                await anyio.sleep(delay)
                continue
            except aiohttp.ClientError as exc:
                # The exchange itself is wrong (a redirect loop, an invalid URL, a response
                # that is not HTTP): another attempt would meet the same answer.
                stats.requests += 1
                stats.failed += 1
                raise self._failed(request, _describe(exc)) from None
            stats.requests += 1
            stats.statuses[response.status] += 1
            # Final answers, errors included, go back to the auth flow: a 401 may be
            # answered with a new credential. ``send`` decides what failed.
            if response.status < 400 or response.status not in policy.statuses:
                return response
            if attempt == policy.attempts:
                stats.failed += 1
                raise self._failed(
                    request, f"HTTP {response.status} after {attempt} attempts", response.status
                )
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is not None and wait > policy.max_retry_after:
                stats.failed += 1
                raise self._failed(
                    request,
                    f"HTTP {response.status} with Retry-After {wait:.0f}s, more than "
                    f"max_retry_after ({policy.max_retry_after:.0f}s)",
                    response.status,
                )
            if wait is not None and response.status in (429, 503):
                channel.paused_until = max(channel.paused_until, time.monotonic() + wait)
            delay = wait if wait is not None else _backoff(policy, attempt)
            stats.retries += 1
            logger.debug(
                "retrying {} in {:.2f}s: HTTP {}", self._url(request), delay, response.status
            )
            await anyio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    async def _send_once(self, channel: ConnectorChannel, request: Request) -> Response:
        params = (
            [(k, _query_value(v)) for k, v in request.params.items() if v is not None]
            if request.params
            else None
        )
        started = time.perf_counter()
        async with channel.session.request(
            request.method,
            request.url,
            params=params,
            headers=request.headers or None,
            json=request.json,
            data=request.form,
        ) as resp:
            body = await resp.read()
        elapsed = time.perf_counter() - started
        channel.stats.seconds += elapsed
        return Response(request, resp.status, resp.headers, body, str(resp.url), elapsed)

    def _url(self, request: Request) -> str:
        if request.params:
            query = "&".join(f"{k}={v}" for k, v in request.params.items())
            return self.redact(f"{request.url}?{query}")
        return self.redact(request.url)

    def _failed(self, request: Request, reason: str, status: int | None = None) -> RequestFailed:
        url = self._url(request)
        return RequestFailed(
            f"{request.method} {url} failed: {self.redact(reason)}", url=url, status=status
        )


async def _acquire(limiter: anyio.CapacityLimiter) -> None:
    # A free slot is taken without a scheduler round trip; only a full limiter waits.
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        await limiter.acquire()


def _backoff(policy: RetryPolicy, attempt: int) -> float:
    base = min(policy.max_backoff, policy.backoff * (2 ** (attempt - 1)))
    return max(0.0, base * (1 + random.uniform(-policy.jitter, policy.jitter)))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
