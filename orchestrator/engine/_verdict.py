"""How a run ended: its status from what it lost, and the reason, with its causes."""

from __future__ import annotations

from ._checks import CheckTally
from ._context import RunContext


def status_of(ctx: RunContext, checks: list[CheckTally]) -> str:
    """ok, partial or failed. Work that was planned and not done — requests that failed,
    that were never sent, page chains short of their total — is lost work: beyond the
    policy's ratio the run failed, below it the run is partial, never ok. A run that
    stopped early (its API's quota was used up) is partial: what it did not send is left
    for the next run, not lost."""
    stats = ctx.stats
    planned = stats.logical_requests()
    lost = stats.failed_requests + stats.skipped_requests
    if planned and lost / planned > ctx.pipeline.policy.max_failed_ratio:
        return "failed"
    if any(t.failed and t.check.severity == "error" for t in checks):
        return "failed"
    if lost or stats.rejected or ctx.stopped or any(t.failed for t in checks):
        return "partial"
    return "ok"


def failure_reason(ctx: RunContext, checks: list[CheckTally]) -> str:
    """Why the run failed: what was lost, and its first causes."""
    failed_checks = [t for t in checks if t.failed and t.check.severity == "error"]
    stats = ctx.stats
    if failed_checks:
        reason = "checks failed: " + ", ".join(
            f"{t.check.name} ({t.failed} of {t.passed + t.failed})" for t in failed_checks
        )
    else:
        planned = max(1, stats.logical_requests())
        # A resumed run's row adds up every attempt; the verdict is this attempt's (the
        # earlier one's failures were sent again), and the words say which.
        these = "requests of this attempt" if ctx.base else "requests"
        lost = [f"{stats.failed_requests} of {planned} {these} failed"]
        if stats.skipped_requests:
            lost.append(f"{stats.skipped_requests} were not sent")
        reason = (
            f"{', '.join(lost)}: more than the policy's max_failed_ratio of "
            f"{ctx.pipeline.policy.max_failed_ratio:g}"
        )
    causes = ctx.causes.describe()
    return f"{reason} — {causes}" if causes else reason
