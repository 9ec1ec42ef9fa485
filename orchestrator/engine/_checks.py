"""Check tallies: pass/fail counts of one check over a run, a few failing samples, the
cause of the first failure, and — for a response check — its response times."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from podium.connectors import Request, Response
from podium.pipeline import Check, HTTPStatusError, RequestError, truthy

from ..alerts import latency
from ..storage import CheckResultRow

SAMPLES_PER_CHECK = 5


def response_data(response: Response) -> dict[str, Any]:
    """What a response check's expression sees for an answered request (any status)."""
    return {
        "status": response.status,
        "url": response.url,
        "elapsed_ms": round(response.elapsed * 1000, 3),
        "connected": True,
        "error": None,
        "cause": None,
        "headers": dict(response.headers),
        "body": response.body_value(),
        "certificate": response.certificate,
    }


def failure_data(exc: RequestError, request: Request, elapsed: float) -> dict[str, Any]:
    """What a response check sees for a request that failed for good: the error status's
    response when there was one, else ``status: null`` with the ``error`` kind and cause.
    ``elapsed_ms`` is the whole logical request's time then, retries included."""
    response = exc.response
    if response is not None:
        data = response_data(response)
    else:
        data = {
            "status": None,
            "url": request.url,
            "elapsed_ms": round(elapsed * 1000, 3),
            "headers": {},
            "body": None,
            "certificate": None,
        }
    # An error status is an answer, not an error of the exchange: ``error`` stays null.
    data["error"] = None if isinstance(exc, HTTPStatusError) else exc.kind
    data["connected"] = bool(exc.connected)
    data["cause"] = exc.reason
    return data


@dataclass
class CheckTally:
    """Pass/fail counts of one check over a run, with a few failing samples."""

    check: Check
    # Samples are stored with the run: they pass through the run's redactor first.
    redact: Callable[[Any], Any] = lambda value: value
    passed: int = 0
    failed: int = 0
    samples: list[Any] = field(default_factory=list)
    cause: str | None = None
    latency: list[int] | None = None

    def __post_init__(self) -> None:
        conditions = self.check.conditions
        self._search = conditions[0].search if len(conditions) == 1 else None
        self._conditions = conditions
        if self.check.on == "responses":
            self.latency = latency.empty()

    def observe(self, data: Any) -> bool:
        if self.latency is not None:
            elapsed = data.get("elapsed_ms")
            if isinstance(elapsed, int | float) and data.get("status") is not None:
                self.latency[latency.bucket(elapsed)] += 1
        if self._search is not None:
            if truthy(self._search(data)):
                self.passed += 1
                return True
            failing = [self.check.expect_text]
        else:
            failing = [c.source for c in self._conditions if not truthy(c.search(data))]
            if not failing:
                self.passed += 1
                return True
        self.failed += 1
        if self.cause is None:
            self.cause = self.redact(describe_failure(self.check, data, failing))
        if len(self.samples) < SAMPLES_PER_CHECK:
            sample = self.redact(data)
            if self._search is None and isinstance(sample, dict):
                sample = {**sample, "failed_conditions": failing}
            self.samples.append(sample)
        return False

    @property
    def evaluated(self) -> int:
        return self.passed + self.failed

    def row(self, run_id: str) -> CheckResultRow:
        cause = self.cause
        if cause is not None and self.check.on == "records":
            cause = f"{self.failed} of {self.evaluated} records failed; first: {cause}"
        return CheckResultRow(
            run_id=run_id,
            name=self.check.name,
            target=self.check.on,
            expect=self.check.expect_text,
            severity=self.check.severity,
            passed=self.passed,
            failed=self.failed,
            ok=self.failed == 0,
            samples=self.samples,
            cause=cause,
            latency=self.latency if self.latency and any(self.latency) else None,
        )


def describe_failure(check: Check, data: Any, failing: list[str]) -> str:
    """One line on why ``data`` failed ``check``: what was seen, then what was expected."""
    expected = "; ".join(failing)
    if check.on != "responses" or not isinstance(data, dict):
        return f"expected {expected}"
    if data.get("error"):
        seen = f"{data['error']}: {data.get('cause') or 'no answer'}"
    else:
        seen = f"HTTP {data.get('status')} in {data.get('elapsed_ms', 0):.0f} ms"
    return f"{seen} from {data.get('url')}; expected {expected}"
