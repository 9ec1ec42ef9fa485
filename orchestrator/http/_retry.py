"""Whether to try a request again: a pure decision, separate from the sending.

The gateway asks ``decide`` after every attempt. Transport failures (no response) and the
policy's statuses (429, 5xx by default) are retried with exponential backoff and jitter
until the attempts run out; a ``Retry-After`` on them is honoured — and on 429/503 it
pauses the whole connector, since the server has said every request would meet the same
answer — unless it is longer than ``max_retry_after``, which fails the request at once
rather than stall the run. Every other outcome is final.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from podium.connectors import RetryPolicy

# Statuses whose Retry-After speaks for the whole server, not this one request.
PAUSING_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class Retry:
    """Wait ``delay`` seconds and send again; ``pause``: hold the whole connector that long."""

    delay: float
    reason: str
    pause: bool = False


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The request has failed for good; ``reason`` says why in a few words."""

    reason: str


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


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """The wait after failed attempt ``attempt`` (1-based): doubling, capped, jittered."""
    base: float = min(policy.max_backoff, policy.backoff * (2 ** (attempt - 1)))
    jitter: float = (rng or random).uniform(-policy.jitter, policy.jitter)
    return max(0.0, base * (1 + jitter))


def decide_failure(
    policy: RetryPolicy, attempt: int, reason: str, rng: random.Random | None = None
) -> Retry | GiveUp:
    """After an attempt that got no response (a timeout, a refused or broken connection)."""
    if attempt >= policy.attempts:
        return GiveUp(f"{reason} after {attempt} attempt{'s' if attempt > 1 else ''}")
    return Retry(backoff(policy, attempt, rng), reason)


def decide_status(
    policy: RetryPolicy,
    attempt: int,
    status: int,
    retry_after: str | None = None,
    rng: random.Random | None = None,
) -> Retry | GiveUp | None:
    """After an attempt that got an answer: None when the answer is final as it is."""
    if status not in policy.statuses:
        return None
    reason = f"HTTP {status}"
    wait = retry_after_seconds(retry_after)
    if wait is not None and wait > policy.max_retry_after:
        return GiveUp(
            f"{reason} with Retry-After {wait:.0f}s, more than max_retry_after "
            f"({policy.max_retry_after:.0f}s)"
        )
    if attempt >= policy.attempts:
        return GiveUp(f"{reason} after {attempt} attempt{'s' if attempt > 1 else ''}")
    if wait is not None:
        return Retry(wait, reason, pause=status in PAUSING_STATUSES)
    return Retry(backoff(policy, attempt, rng), reason)
