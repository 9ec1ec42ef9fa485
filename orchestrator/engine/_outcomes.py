"""What a finished run tells its alert rules and its checks' history.

A check's *verdict* in a run: evaluated, it passed when nothing failed it; not evaluated
at all (its fetch never answered: the run failed before, a credential was refused), it
failed with the run — a monitor whose login breaks is down, not silent. A run that was
interrupted or cancelled, or a dry run, has no verdict: it says nothing either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..alerts import AlertRule, Outcome
from ..storage import CheckResultRow, RunRow
from ._checks import CheckTally

# Run endings that say something about the pipeline (interrupted and cancelled do not).
_CONCLUSIVE = frozenset({"ok", "partial", "failed", "timed_out"})


def has_verdict(run: RunRow) -> bool:
    return run.status in _CONCLUSIVE and not run.dry_run


def settle_unevaluated(
    run: RunRow, tallies: Sequence[CheckTally], rows: list[CheckResultRow]
) -> None:
    """A check that saw nothing in a run that did not do its work failed with it."""
    if run.status in ("ok", "partial"):
        return
    for tally, row in zip(tallies, rows, strict=True):
        if tally.evaluated == 0:
            row.ok = False
            row.cause = f"not evaluated: the run {run.status.replace('_', ' ')}" + (
                f" ({run.error})" if run.error else ""
            )


def alert_outcomes(
    rules: Sequence[AlertRule], run: RunRow, rows: Sequence[CheckResultRow]
) -> list[tuple[AlertRule, Outcome]]:
    """Each rule's outcome from this run (none for a run without a verdict)."""
    if not has_verdict(run) or not rules:
        return []
    at = run.finished_at or run.started_at
    by_name = {row.name: row for row in rows}
    out: list[tuple[AlertRule, Outcome]] = []
    for rule in rules:
        if rule.check is None:
            failed = run.status in rule.on
            cause = (run.error or f"the run ended {run.status}") if failed else None
            out.append((rule, Outcome(ok=not failed, at=at, cause=cause, run_id=run.id)))
            continue
        row = by_name.get(rule.check)
        if row is None:
            continue
        cause = None if row.ok else (row.cause or f"check {row.name!r} failed")
        out.append((rule, Outcome(ok=row.ok, at=at, cause=cause, run_id=run.id)))
    return out
