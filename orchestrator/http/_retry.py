"""Whether to try a request again: a pure decision, separate from the sending.

The gateway asks ``decide`` after every attempt. Transport failures (no response) and the
policy's statuses (429, 5xx by default) are retried with exponential backoff and jitter
until the attempts run out; a ``Retry-After`` on them is honoured — and on 429/503 it
pauses the whole connector, since the server has said every request would meet the same
answer — unless it is longer than ``max_retry_after``, which fails the request at once
rather than stall the run. Every other outcome is final.

Response rules (``podium.connectors.ResponseRule``) come first: ``decide_answer`` takes
the rule that matched an answer, if any, and says what it means — retry, pause and
retry (``rate_limited``), accept (``success``, ``ignore``), or fail with the rule's name.
The wait between attempts follows the policy's ``backoff_strategy``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from podium.connectors import ResponseRule, RetryPolicy

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


@dataclass(frozen=True, slots=True)
class Accept:
    """The answer is final as it is, whatever its status; ``ignored``: it has no records."""

    ignored: bool = False


def backoff(
    policy: RetryPolicy,
    attempt: int,
    rng: random.Random | None = None,
    headers: Mapping[str, str] | None = None,
) -> float:
    """The wait after failed attempt ``attempt`` (1-based), by the policy's strategy:
    doubling and capped, constant, or the answer's ``backoff_header``; jittered."""
    strategy = policy.backoff_strategy
    if strategy == "header" and headers is not None:
        stated = retry_after_seconds(headers.get(policy.backoff_header))
        if stated is not None:
            return stated
    if strategy == "constant":
        base = policy.backoff
    else:
        base = min(policy.max_backoff, policy.backoff * (2 ** (attempt - 1)))
    jitter: float = (rng or random).uniform(-policy.jitter, policy.jitter)
    return max(0.0, base * (1 + jitter))


def decide_failure(
    policy: RetryPolicy, attempt: int, reason: str, rng: random.Random | None = None
) -> Retry | GiveUp:
    """After an attempt that got no response (a timeout, a refused or broken connection)."""
    if attempt >= policy.attempts:
        return GiveUp(_after(reason, attempt))
    return Retry(backoff(policy, attempt, rng), reason)


def decide_status(
    policy: RetryPolicy,
    attempt: int,
    status: int,
    retry_after: str | None = None,
    rng: random.Random | None = None,
    *,
    headers: Mapping[str, str] | None = None,
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
        return GiveUp(_after(reason, attempt))
    if wait is not None:
        return Retry(wait, reason, pause=status in PAUSING_STATUSES)
    return Retry(backoff(policy, attempt, rng, headers), reason)


def decide_answer(
    policy: RetryPolicy,
    attempt: int,
    status: int,
    headers: Mapping[str, str],
    rule: ResponseRule | None = None,
    rng: random.Random | None = None,
) -> Retry | GiveUp | Accept | None:
    """After an attempt that got an answer, with the response rule that matched it (if
    any): None when the status alone decides (below 400 a success, else a failure)."""
    if rule is None:
        return decide_status(
            policy, attempt, status, headers.get("Retry-After"), rng, headers=headers
        )
    action = rule.action
    if action == "success":
        return Accept()
    if action == "ignore":
        return Accept(ignored=True)
    if action == "fail":
        return GiveUp(rule.message or f"HTTP {status} matched {rule.describe()}")
    reason = rule.message or f"HTTP {status}, {rule.describe()}"
    if attempt >= policy.attempts:
        return GiveUp(_after(reason, attempt))
    if action == "rate_limited":  # as a 429: the whole connector waits
        wait = retry_after_seconds(headers.get("Retry-After"))
        if wait is not None and wait > policy.max_retry_after:
            return GiveUp(
                f"{reason} with Retry-After {wait:.0f}s, more than max_retry_after "
                f"({policy.max_retry_after:.0f}s)"
            )
        delay = wait if wait is not None else backoff(policy, attempt, rng, headers)
        return Retry(delay, reason, pause=True)
    return Retry(backoff(policy, attempt, rng, headers), reason)


def _after(reason: str, attempt: int) -> str:
    return f"{reason} after {attempt} attempt{'s' if attempt > 1 else ''}"
