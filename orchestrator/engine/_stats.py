"""Live counters of a run, read by the progress display and written to the journal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..http import ConnectorStats


@dataclass(slots=True)
class StageStats:
    kind: str
    records_in: int = 0
    records_out: int = 0
    rejected: int = 0
    requests: int = 0  # logical requests sent (pages), retries not counted
    failed: int = 0  # of those, failed for good (or a page chain short of its total)
    not_sent: int = 0  # planned but never sent: a template that did not render, no credential
    ignored: int = 0  # answered, and a response rule said to ignore it (no records)
    # Not done because the run stopped first (the API's quota was used up): never sent, or
    # sent and answered 429 with no retry possible within the connector's wait.
    stopped: int = 0
    # Not sent on purpose: a dry run holds back requests that change things. Not lost
    # work, so not in the policy's ratio: a dry run of a correct pipeline is not a failure.
    dry_run_skipped: int = 0
    planned: int | None = None  # fan-out items, when known up front
    done: int = 0  # fan-out items finished (fetch) or batches written (store)
    finished: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = {
            "kind": self.kind,
            "in": self.records_in,
            "out": self.records_out,
        }
        if self.kind == "fetch":
            data |= {"requests": self.requests, "failed": self.failed}
            if self.not_sent:
                data["not_sent"] = self.not_sent
            if self.ignored:
                data["ignored"] = self.ignored
            if self.stopped:
                data["stopped"] = self.stopped
            if self.dry_run_skipped:
                data["dry_run_skipped"] = self.dry_run_skipped
        if self.rejected:
            data["rejected"] = self.rejected
        return data


@dataclass(slots=True)
class RunStats:
    stages: dict[str, StageStats] = field(default_factory=dict)
    connectors: dict[str, ConnectorStats] = field(default_factory=dict)
    stored: int = 0
    checks_failed: int = 0

    # The counting model, one meaning per number:
    #   requests          HTTP exchanges that went out (every attempt, token and login
    #                     requests and redirect hops included) — what the servers saw;
    #   retries           attempts beyond the first;
    #   failed_requests   logical requests (pages) that failed for good, after retries, or
    #                     page chains that ended short of the total they stated;
    #   skipped_requests  logical requests planned but never sent (a template that did
    #                     not render, a connector that could not obtain its credential).
    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.connectors.values())

    @property
    def retries(self) -> int:
        return sum(c.retries for c in self.connectors.values())

    @property
    def failed_requests(self) -> int:
        return sum(s.failed for s in self.stages.values() if s.kind == "fetch")

    @property
    def skipped_requests(self) -> int:
        return sum(s.not_sent for s in self.stages.values() if s.kind == "fetch")

    def logical_requests(self) -> int:
        """Logical requests the fetch stages planned, sent or not, retries not counted:
        the policy's denominator."""
        return sum(s.requests + s.not_sent for s in self.stages.values() if s.kind == "fetch")

    @property
    def rejected(self) -> int:
        return sum(s.rejected for s in self.stages.values())

    def records_in(self) -> int:
        """Records that entered the pipeline: what the fetch stages yielded."""
        return sum(s.records_out for s in self.stages.values() if s.kind == "fetch")

    def records_out(self) -> int:
        """Records that reached the pipeline's ends (store stages or final stages)."""
        return sum(s.records_in for s in self.stages.values() if s.kind == "store")

    def counts(self) -> dict[str, Any]:
        """What a run check's expression sees."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "failed_requests": self.failed_requests,
            "skipped_requests": self.skipped_requests,
            "records_in": self.records_in(),
            "stored": self.stored,
            "rejected": self.rejected,
            "stages": {name: s.as_dict() for name, s in self.stages.items()},
        }
