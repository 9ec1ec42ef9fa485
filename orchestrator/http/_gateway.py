"""The one place every outbound request passes: limits, retries, redirects, credentials.

Each connector has a channel per run: its transport (one aiohttp session, so its own
cookie jar and pool), a limiter, its pause state and its run-time credential. A request
takes a slot from its connector's limiter and from the global limiter for each attempt
(never while it sleeps between attempts), so the number in flight never exceeds either.
Then a slot of its connector's rate budget (``_budget.py``): shared by the runs of the
process, held back by what the API's rate-limit headers said; when the quota is used up
for longer than the connector may wait, ``QuotaExhausted`` ends the request unsent.
The rate slot is taken last, right before the send, so requests leave at the budget's
spacing even when the server is slow (a slot taken while waiting for a concurrency slot
would let them go in clumps).

Each answer is judged by the response rules (the fetch's, then the connector's) before
its status: a rule may retry it, fail it, accept it or ignore it (``_retry.decide_answer``).

Credentials are added here, per request, not by the session: the connector's headers
(auth among them) go to the origin that asked for them. A redirect is followed here too:
to the same origin with everything; to another origin with content-negotiation headers
only, no secret-bearing query value and no cookie jar — unless the connector sets
``redirects.credentials = "any_origin"``. (aiohttp's own redirects strip ``Authorization``
and nothing else, so an API-key header would have crossed.)

Auth flows that need a run-time credential (an OAuth2 token, a login cookie) share one
per channel (``_credentials.py``).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Mapping
from contextlib import AsyncExitStack
from urllib.parse import urljoin, urlsplit

import anyio
import anyio.lowlevel
from loguru import logger

from podium.connectors import (
    Connector,
    Credential,
    NeedCredential,
    Request,
    Response,
    ResponseRule,
    first_match,
)
from podium.connectors import origin as url_origin
from podium.pipeline import (
    HTTPStatusError,
    PluginError,
    PodiumError,
    RequestError,
    ResponseError,
    TransportError,
)

from .._redact import Redactor
from ._budget import BUDGETS, Budget, Budgets, QuotaExhausted
from ._credentials import CredentialCache, run_credential_flow
from ._retry import Accept, GiveUp, Retry, decide_answer, decide_failure, retry_after_seconds
from ._stats import LATENCY_BUCKETS, ConnectorStats
from ._transport import AiohttpTransport, Transport

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# The only headers a hop to another origin keeps: they negotiate content, never carry a key.
SAFE_ACROSS_ORIGINS = frozenset(
    {"accept", "accept-encoding", "accept-language", "cache-control", "content-type", "user-agent"}
)
# Transports by connector name, or one for every connector (tests, replays).
Transports = Transport | Mapping[str, Transport]


class ConnectorChannel:
    """One connector's transport, limiter, pause state and credential within a run."""

    def __init__(
        self,
        connector: Connector,
        transport: Transport,
        stats: ConnectorStats,
        budget: Budget | None = None,
    ) -> None:
        self.connector = connector
        self.transport = transport
        self.stats = stats
        self.budget = budget
        cfg = connector.config
        self.rules = cfg.rules
        self.limiter = anyio.CapacityLimiter(cfg.concurrency)
        self.policy = cfg.retry
        self.redirects = cfg.redirects
        self.paused_until = 0.0
        self.headers = connector.session_headers()
        # Requests go out as built (no per-request auth flow to drive).
        self.direct = not connector.needs_auth_flow()
        self.credentials = CredentialCache()


class Gateway:
    """Owns every transport of a run; use as ``async with Gateway(...) as gateway``."""

    def __init__(
        self,
        connectors: dict[str, Connector],
        *,
        concurrency: int,
        stats: dict[str, ConnectorStats],
        redactor: Redactor,
        transports: Transports | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self._connectors = connectors
        self._budgets = budgets or BUDGETS
        self._global = anyio.CapacityLimiter(concurrency)
        self._stats = stats
        self.redact = redactor
        self._transports = transports
        self._channels: dict[str, ConnectorChannel] = {}
        self._stack = AsyncExitStack()

    def _transport_for(self, name: str, connector: Connector) -> Transport:
        given = self._transports
        if isinstance(given, Transport):
            return given
        if given is not None and name in given:
            return given[name]
        return AiohttpTransport(connector.config)

    async def __aenter__(self) -> Gateway:
        async with AsyncExitStack() as stack:
            for name, connector in self._connectors.items():
                self.redact.add(connector.secrets())
                transport = await stack.enter_async_context(self._transport_for(name, connector))
                transport.redact_with(self.redact)
                stats = self._stats.setdefault(name, ConnectorStats())
                settings = connector.config.rate_settings()
                budget = (
                    self._budgets.get(name, settings)
                    if settings.limits or settings.headers
                    else None
                )
                self._channels[name] = ConnectorChannel(connector, transport, stats, budget)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Closing transports must finish even when the run is being cancelled.
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()
        # aiohttp closes transports on the next loop turns; give them those turns.
        await anyio.lowlevel.checkpoint()

    def connector(self, name: str) -> Connector:
        return self._channels[name].connector

    # -- sending ----------------------------------------------------------------------------
    async def send(
        self,
        connector_name: str,
        request: Request,
        rules: tuple[ResponseRule, ...] | None = None,
    ) -> Response:
        """Send through the connector's auth flow; the final response: status below 400,
        or one a response rule accepted (``response.action``: success or ignore).

        ``rules`` judge the answers (default: the connector's). Raises
        ``HTTPStatusError`` (with the response) for an error status or a rule's failure,
        a ``TransportError`` when no answer came, ``CredentialError`` when the connector's
        credential could not be obtained (the request was not sent), ``QuotaExhausted``
        when the API's quota is used up for longer than the connector waits (not sent).
        """
        channel = self._channels[connector_name]
        judged = channel.rules if rules is None else rules
        if channel.direct:
            response = await self._send_with_retries(channel, request, judged)
        else:
            response = await self._send_through_flow(channel, request, judged)
        if response.status >= 400 and response.action is None:
            raise self._status_error(response)
        return response

    async def _send_through_flow(
        self, channel: ConnectorChannel, request: Request, rules: tuple[ResponseRule, ...]
    ) -> Response:
        flow = channel.connector.auth_flow(request)
        response: Response | None = None
        try:
            step = next(flow)
            while True:
                if isinstance(step, NeedCredential):
                    step = flow.send(await self._credential(channel, step))
                else:
                    response = await self._send_with_retries(channel, step, rules)
                    step = flow.send(response)
        except StopIteration:
            pass
        finally:
            flow.close()
        if response is None:
            raise PluginError(
                f"connector {channel.connector.name!r}: its auth flow sent no request"
            )
        return response

    async def _send_with_retries(
        self,
        channel: ConnectorChannel,
        request: Request,
        rules: tuple[ResponseRule, ...] = (),
    ) -> Response:
        """The final answer to ``request`` after the rules' and the policy's retries (any
        status; a rule's acceptance in ``response.action``)."""
        policy, stats = channel.policy, channel.stats
        attempt = 0
        while True:
            attempt += 1
            decision: Retry | GiveUp | Accept | None
            try:
                response = await self._attempt(channel, request, retry=attempt > 1)
            except QuotaExhausted as exc:
                if attempt == 1:
                    raise
                raise QuotaExhausted(exc.message, exc.until, sent=attempt - 1) from None
            except TransportError as exc:
                stats.errors[exc.kind] += 1
                decision = decide_failure(policy, attempt, exc.message)
                if isinstance(decision, GiveUp):
                    raise self._translate(exc, decision.reason, attempt) from None
            except RequestError as exc:  # the exchange itself is wrong: again would be too
                stats.errors[exc.kind] += 1
                raise self._translate(exc, exc.message, attempt) from None
            else:
                if response.status >= 400:
                    stats.errors["status_5xx" if response.status >= 500 else "status_4xx"] += 1
                # A 401 in an auth flow is the flow's to answer (a token to refresh).
                judged = rules and (channel.direct or response.status != 401)
                rule = first_match(rules, response) if judged else None
                if rule is None and response.status not in policy.statuses:
                    response.attempts = attempt  # the common case, decided here
                    return response
                decision = decide_answer(policy, attempt, response.status, response.headers, rule)
                if decision is None or isinstance(decision, Accept):
                    response.attempts = attempt
                    if decision is not None:
                        response.action = "ignore" if decision.ignored else "success"
                    return response
                if response.stream is not None:  # not kept: its connection goes back now
                    await response.stream.aclose()
                if isinstance(decision, GiveUp):
                    response.attempts = attempt
                    stop = self._quota_refused(channel, response, attempt)
                    if stop is not None:
                        raise stop
                    raise self._status_error(response, decision.reason)
            if decision.pause:
                channel.paused_until = max(channel.paused_until, time.monotonic() + decision.delay)
            logger.debug(
                "retrying {} in {:.2f}s: {}", self._url(request), decision.delay, decision.reason
            )
            await anyio.sleep(decision.delay)

    async def _attempt(
        self, channel: ConnectorChannel, request: Request, *, retry: bool = False
    ) -> Response:
        """One attempt: a slot on both limiters and the rate budget, then the exchange and
        its redirects. A retry is counted once it goes out (the budget may stop it)."""
        await self._take_slots(channel)
        try:
            budget = channel.budget
            if budget is None:
                channel.stats.retries += retry
                return await self._exchange(channel, request)
            await budget.take(request.url, lambda: channel.paused_until)
            channel.stats.retries += retry
            answered: Response | None = None
            try:
                answered = await self._exchange(channel, request)
                return answered
            finally:
                budget.done(answered.headers if answered is not None else None)
        finally:
            self._global.release()
            channel.limiter.release()

    async def _exchange(self, channel: ConnectorChannel, request: Request) -> Response:
        stats, redirects = channel.stats, channel.redirects
        current, credentials, hops = request, True, 0
        while True:
            stats.requests += 1
            response = await channel.transport.send(
                self._dress(channel, current, credentials), cookies=credentials
            )
            status = response.status
            stats.statuses[status] += 1
            elapsed = response.elapsed
            stats.seconds += elapsed
            # A bisect over the 13 bounds in C: ~0.07 µs an exchange (W1 counts microseconds).
            stats.latency[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
            location = response.headers.get("Location") if status in REDIRECT_STATUSES else None
            if not location or not redirects.follow:
                response.redirects = hops
                return response
            hops += 1
            if hops > redirects.max:
                raise ResponseError(
                    f"more than {redirects.max} redirects (last to {location})",
                    request=current,
                    response=response,
                )
            target = urljoin(response.url, location)
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                raise ResponseError(f"redirect to a non-HTTP URL {location!r}", request=current)
            if (
                credentials
                and redirects.credentials == "same_origin"
                and url_origin(target) != url_origin(response.url)
            ):
                credentials = False  # from here on, every hop goes without them
            current = _redirected(current, response.status, target)

    def _dress(self, channel: ConnectorChannel, request: Request, credentials: bool) -> Request:
        """The request as it goes out: with the connector's headers, or — on a hop to
        another origin — with only content-negotiation headers (``Accept``, ``User-Agent``,
        …) and no query value holding a secret: a header such as ``X-Api-Key`` may hold a
        credential podium cannot tell from its value, so none but those cross."""
        if request.headers:
            headers = {**channel.headers, **request.headers}
        elif channel.headers:
            headers = channel.headers
        elif credentials:
            return request
        else:
            headers = {}
        if credentials:
            return Request(
                request.method,
                request.url,
                request.params,
                headers,
                request.json,
                request.form,
                request.stream,
            )
        contains_secret = self.redact.contains_secret
        headers = {
            name: value
            for name, value in headers.items()
            if name.lower() in SAFE_ACROSS_ORIGINS and not contains_secret(value)
        }
        params = {k: v for k, v in request.params.items() if not contains_secret(str(v))}
        return Request(
            request.method, request.url, params, headers, request.json, request.form, request.stream
        )

    async def _credential(self, channel: ConnectorChannel, need: NeedCredential) -> Credential:
        async def send_ok(request: Request) -> Response:
            response = await self._send_with_retries(channel, request)
            if response.status >= 400:
                raise self._status_error(response)
            return response

        async def obtain() -> Credential:
            return await run_credential_flow(channel.connector, send_ok, self.redact)

        return await channel.credentials.get(need, obtain, self.redact)

    def _quota_refused(
        self, channel: ConnectorChannel, response: Response, sent: int
    ) -> QuotaExhausted | None:
        """A 429 given up on for its long Retry-After is the quota used up: a clean stop
        of the run where the connector stops on quota (not a failed request)."""
        if response.status != 429 or channel.budget is None:
            return None
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        return None if wait is None else channel.budget.refused(wait, sent)

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

    # -- errors -----------------------------------------------------------------------------
    def _url(self, request: Request) -> str:
        if request.params:
            query = "&".join(f"{k}={v}" for k, v in request.params.items())
            joiner = "&" if "?" in request.url else "?"
            return self.redact(f"{request.url}{joiner}{query}")
        return self.redact(request.url)

    def _status_error(self, response: Response, reason: str | None = None) -> HTTPStatusError:
        request = response.request
        url = self._url(request)
        reason = self.redact(reason or f"HTTP {response.status}")
        return HTTPStatusError(
            f"{request.method} {url}: {reason}",
            request=request,
            response=response,
            attempts=response.attempts,
            url=url,
            reason=reason,
        )

    def _translate(self, exc: RequestError, reason: str, attempts: int) -> RequestError:
        """The transport's error, now with the URL (redacted) and the attempts it took."""
        request = exc.request
        url = self._url(request) if request is not None else None
        reason = self.redact(reason)
        message = f"{request.method} {url}: {reason}" if request else reason
        return type(exc)(
            message,
            request=request,
            response=exc.response,
            attempts=attempts,
            url=url,
            reason=reason,
            connected=exc.connected,
        )


def _redirected(request: Request, status: int, target: str) -> Request:
    """The next hop's request: 303, and 301/302 after a POST, become a bodiless GET (what
    browsers and every HTTP client do); 307 and 308 keep the method and the body."""
    if status == 303 or (status in (301, 302) and request.method == "POST"):
        method = "GET" if request.method != "HEAD" else "HEAD"
        return Request(method, target, {}, request.headers, stream=request.stream)
    return Request(
        request.method, target, {}, request.headers, request.json, request.form, request.stream
    )


async def _acquire(limiter: anyio.CapacityLimiter) -> None:
    # A free slot is taken without a scheduler round trip; only a full limiter waits.
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        await limiter.acquire()


def error_kind(exc: PodiumError) -> str:
    """What a response check sees as ``error`` for a failed request."""
    return getattr(exc, "kind", None) or "request"
