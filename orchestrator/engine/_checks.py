"""Check tallies: pass/fail counts of one check over a run, with a few failing samples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from podium.connectors import Request, Response
from podium.pipeline import Check, HTTPStatusError, RequestError, truthy

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

    def __post_init__(self) -> None:
        self._search = self.check.expr.search

    def observe(self, data: Any) -> bool:
        if truthy(self._search(data)):
            self.passed += 1
            return True
        self.failed += 1
        if len(self.samples) < SAMPLES_PER_CHECK:
            self.samples.append(self.redact(data))
        return False

    def row(self, run_id: str) -> CheckResultRow:
        return CheckResultRow(
            run_id=run_id,
            name=self.check.name,
            target=self.check.on,
            expect=self.check.expect,
            severity=self.check.severity,
            passed=self.passed,
            failed=self.failed,
            ok=self.failed == 0,
            samples=self.samples,
        )
