"""Rate budgets: the slots a connector's requests take, shared by every run of a process.

A budget belongs to a connector name and its rate settings, so a daemon running several
pipelines on one connector spends one budget; a changed config is another budget. Budgets
are kept per event loop (aiolimiter's buckets are bound to one), for as long as the loop
lives: a budget holds no task, only its buckets and what the API last said of its quota.

The buckets are aiolimiter's leaky buckets (a well-kept, dependency-free limiter that
wakes waiters in order with one timer, no task per waiter). ``rate = "20/s"`` with
``burst = 1`` is a bucket of 1 leaking every 50 ms: requests are evenly spaced, so no
second holds more than 21.

The API's own rate-limit headers are read on every answer: ``X-RateLimit-Remaining`` /
``X-RateLimit-Reset`` (epoch seconds or delta seconds), IETF ``RateLimit-Remaining`` /
``RateLimit-Reset`` and the structured ``RateLimit`` (``r=…;t=…`` or
``remaining=…, reset=…``). What was left is counted down by each attempt sent since
(requests in flight when the answer came are counted as spent), and when nothing is left
the budget holds every request until the reset, so none meets a 429.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import anyio
from aiolimiter import AsyncLimiter
from multidict import CIMultiDict, CIMultiDictProxy

from podium.connectors import RateSettings

# A reset this far in the future is an epoch timestamp, not a delta (the first is 1973).
_EPOCH_THRESHOLD = 1e8
# Added to a stated reset: the server's clock and its rounding of the reset to seconds.
RESET_MARGIN = 0.05
_STRUCTURED = re.compile(r"(?:^|[;,\s])(r|remaining|t|reset)\s*=\s*(\d+(?:\.\d+)?)")


@dataclass(frozen=True, slots=True)
class Quota:
    """What an answer's headers said: requests left, and seconds until the window resets."""

    remaining: int
    reset: float | None


def quota_from_headers(headers: Mapping[str, str], now: float | None = None) -> Quota | None:
    """The quota an answer states, or None when it states none (pure)."""
    # Transports hand over case-insensitive headers: looked up as they are, no copy.
    lower = headers if isinstance(headers, CIMultiDictProxy | CIMultiDict) else CIMultiDict(headers)
    remaining = lower.get("x-ratelimit-remaining") or lower.get("ratelimit-remaining")
    reset = lower.get("x-ratelimit-reset") or lower.get("ratelimit-reset")
    structured = lower.get("ratelimit")
    if structured and (remaining is None or reset is None):
        found: dict[str, str] = {m[1]: m[2] for m in _STRUCTURED.finditer(structured.lower())}
        remaining = remaining or found.get("r") or found.get("remaining")
        reset = reset or found.get("t") or found.get("reset")
    left = _number(remaining)
    if left is None:
        return None
    wait = _number(reset)
    if wait is not None and wait > _EPOCH_THRESHOLD:
        wait = wait - (time.time() if now is None else now)
    return Quota(int(left), None if wait is None else max(0.0, wait))


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip().split(",")[0])
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


class QuotaExhausted(Exception):
    """The API's quota is used up for longer than the connector may wait: the run stops.

    Not a PodiumError: it never reaches a user as a failure, the fetch stage turns it into
    a clean stop (the run ends ``partial``)."""

    def __init__(self, message: str, until: float, *, sent: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.until = until
        # Attempts of this request that went out before the quota stopped it (a 429 whose
        # retry would have had to wait too long): 0 when the request was never sent.
        self.sent = sent


class Budget:
    """One connector's buckets and quota state; shared by the runs of one event loop."""

    def __init__(self, name: str, settings: RateSettings) -> None:
        self.name = name
        self.settings = settings
        rate = settings.rate
        # A bucket of ``burst`` that leaks ``rate`` a second.
        self.bucket = (
            AsyncLimiter(settings.burst, settings.burst / rate.per_second) if rate else None
        )
        self.routes = tuple(
            (route, AsyncLimiter(route.burst, route.burst / route.parsed.per_second))
            for route in settings.routes
        )
        self.remaining: int | None = None  # what the API said was left, counted down
        self.window_end = 0.0  # monotonic: when the API said its window resets
        self.held_until = 0.0  # monotonic: no attempt goes out before
        self.exhausted: QuotaExhausted | None = None
        self.in_flight = 0

    async def take(self, url: str, paused_until: Callable[[], float] = lambda: 0.0) -> None:
        """A slot for one attempt at ``url``: the connector's bucket and every matching
        route's, outside any hold (``paused_until``: the channel's own pause, after a 429),
        or QuotaExhausted. Call ``done`` after the attempt.

        A hold that began while this request waited for its slot is waited out and a new
        slot taken: requests held together must not all go at the hold's end."""
        while True:
            delay = self._delay(paused_until())
            if delay > 0:  # a hold may grow while it is waited: checked again after
                await anyio.sleep(delay)
                continue
            if self.bucket is not None:
                await self.bucket.acquire()
            for route, bucket in self.routes:
                if route.matches(url):
                    await bucket.acquire()
            if self._delay(paused_until()) <= 0:
                break
        # Nothing awaits from the check to the send: the count and the request go together.
        if self.remaining is not None:
            self.remaining -= 1
        self.in_flight += 1

    def _delay(self, paused_until: float) -> float:
        """Seconds until an attempt may go; raises QuotaExhausted when it may not."""
        self._check_exhausted()
        now = time.monotonic()
        if self.remaining is not None and self.remaining <= 0:
            self.remaining = None  # a new window starts at the reset
            if self.window_end > now:
                self._hold(self.window_end - now)
        return max(self.held_until, paused_until) - now

    def done(self, headers: Mapping[str, str] | None) -> None:
        """An attempt ended (``headers``: its answer's, None when there was none)."""
        self.in_flight -= 1
        if headers is None or not self.settings.headers:
            return
        quota = quota_from_headers(headers)
        if quota is None:
            return
        # Requests in flight may be counted by the server after this answer: spent.
        self.remaining = quota.remaining - self.in_flight
        if quota.reset is not None:
            self.window_end = time.monotonic() + quota.reset + RESET_MARGIN

    def refused(self, seconds: float, sent: int) -> QuotaExhausted | None:
        """A 429 asked to wait ``seconds``, longer than the retry policy waits: the quota
        is used up, and the run stops as the headers would have stopped it — unless the
        connector waits out a quota that long (then the request fails as asked)."""
        settings = self.settings
        if settings.on_quota != "stop" and seconds <= settings.max_wait:
            return None
        self.exhausted = QuotaExhausted(
            f"connector {self.name!r}: the API answered 429 with Retry-After {seconds:.0f}s: "
            "the run stops here and the next run continues",
            time.monotonic() + seconds,
        )
        return QuotaExhausted(self.exhausted.message, self.exhausted.until, sent=sent)

    def _hold(self, seconds: float) -> None:
        """Nothing is left until ``seconds`` from now: wait, or stop when that is longer
        than the connector may wait."""
        settings = self.settings
        until = time.monotonic() + seconds
        if settings.on_quota == "stop" or seconds > settings.max_wait:
            why = (
                "on_quota = stop"
                if settings.on_quota == "stop"
                else f"longer than max_wait ({settings.max_wait:g}s)"
            )
            self.exhausted = QuotaExhausted(
                f"connector {self.name!r}: the API's rate limit is used up for "
                f"{seconds:.0f}s, {why}: the run stops here and the next run continues",
                until,
            )
            raise self.exhausted
        self.held_until = max(self.held_until, until)

    def _check_exhausted(self) -> None:
        exhausted = self.exhausted
        if exhausted is None:
            return
        if exhausted.until <= time.monotonic():
            self.exhausted = None
            return
        raise exhausted


class Budgets:
    """Budgets by connector name and settings, per event loop. ``BUDGETS`` is the
    process's; a test or an embedding host may pass its own to keep them apart."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, RateSettings], Budget]
        ] = weakref.WeakKeyDictionary()

    def get(self, name: str, settings: RateSettings) -> Budget:
        loop = asyncio.get_running_loop()
        budgets = self._by_loop.setdefault(loop, {})
        key = (name, settings)
        budget = budgets.get(key)
        if budget is None:
            budget = budgets[key] = Budget(name, settings)
        return budget


BUDGETS = Budgets()
