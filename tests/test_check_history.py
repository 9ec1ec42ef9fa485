"""Check history: ``podium checks`` figures are what the journal holds, and pruning the
raw results keeps them.

A history is generated through the journal's own write path (each run finished with its
check result, backdated over 40 days); the expected uptime is computed independently,
with SQL over the raw ``podium_check_results`` rows joined to their runs.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from podium.cli import app
from podium.orchestrator import Journal, open_database
from podium.orchestrator.alerts import latency
from podium.orchestrator.storage import CheckResultRow, Monitoring, RunRow

from .daemon_helpers import sql
from .monitoring_helpers import monitoring_config

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC)


def _generated(seed: int = 7) -> list[tuple[datetime, bool, list[float]]]:
    """(finished at, passed, response times in ms) every 3 h for 40 days; one run in
    seven fails, and the last day has many fast and a few slow answers."""
    rng = random.Random(seed)
    out = []
    for i in range(40 * 8):
        at = NOW - timedelta(hours=3 * i, minutes=5)
        passed = i % 7 != 3
        times = [rng.lognormvariate(4.6, 0.3) for _ in range(20)]  # ~100 ms
        if i % 5 == 0:
            times += [rng.uniform(900, 1100) for _ in range(2)]
        out.append((at, passed, times))
    return out


async def _record(url: str, history: list[tuple[datetime, bool, list[float]]]) -> None:
    async with open_database(url) as db:
        journal = Journal(db)
        for n, (at, passed, times) in enumerate(history):
            run = RunRow(id=f"hist{n:06d}", pipeline="api", trigger="schedule", started_at=at)
            await journal.start(run)
            run.status, run.finished_at = ("ok" if passed else "failed"), at
            histogram = latency.empty()
            for ms in times:
                histogram[latency.bucket(ms)] += 1
            check = CheckResultRow(
                run_id=run.id, name="up", target="responses", expect="status == `200`",
                severity="error", passed=len(times) if passed else 0,
                failed=0 if passed else 1, ok=passed, latency=histogram,
                cause=None if passed else f"HTTP 503 in 12 ms from http://x/health (run {n})",
            )  # fmt: skip
            await journal.finish(run, [], [check], history=[check])


def _expected_uptime(url: str, since: datetime) -> tuple[int, int]:
    rows = sql(
        url,
        "SELECT c.ok, r.finished_at FROM podium_check_results c "
        "JOIN podium_runs r ON r.id = c.run_id WHERE r.pipeline = 'api' AND c.name = 'up'",
    )
    runs = passed = 0
    for ok, finished in rows:
        when = datetime.fromisoformat(finished) if isinstance(finished, str) else finished
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if when >= since:
            runs += 1
            passed += bool(ok)
    return runs, passed


def _checks_json(config: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["checks", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_uptime_and_response_times_match_the_stored_results(tmp_path: Path) -> None:
    monitor = '[monitors.api]\nurl = "http://127.0.0.1:9/health"\ninterval = "3h"\n'
    config = monitoring_config(tmp_path, monitor=monitor, alerts="")
    url = f"sqlite:///{tmp_path / 'podium.db'}"
    history = _generated()
    await _record(url, history)
    [summary] = await anyio.to_thread.run_sync(_checks_json, config)
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    for window, span in {"24h": 24, "7d": 24 * 7, "30d": 24 * 30}.items():
        runs, passed = _expected_uptime(url, hour - timedelta(hours=span - 1))
        figures = summary["uptime"][window]
        assert (figures["runs"], figures["passed"]) == (runs, passed), window
        assert figures["ratio"] == pytest.approx(passed / runs)
    # Not a tautology: the windows differ, and failures are in them.
    assert summary["uptime"]["24h"]["runs"] < summary["uptime"]["7d"]["runs"]
    assert 0 < summary["uptime"]["30d"]["ratio"] < 1
    # Response times over the last 24 h, against the exact percentiles of what was made.
    day = sorted(ms for at, _, times in history if at >= hour - timedelta(hours=23) for ms in times)
    exact_p50, exact_p95 = day[len(day) // 2], day[int(len(day) * 0.95)]
    assert summary["response_ms_24h"]["p50"] == pytest.approx(exact_p50, rel=0.13)
    assert summary["response_ms_24h"]["p95"] == pytest.approx(exact_p95, rel=0.13)
    # State and last failure, with its cause.
    _, latest_ok, _ = history[0]
    assert summary["state"] == ("passing" if latest_ok else "failing")
    last_failure = next((at, n) for n, (at, ok, _) in enumerate(history) if not ok)
    assert summary["last_failure"]["cause"].endswith(f"(run {last_failure[1]})")
    assert datetime.fromisoformat(summary["last_failure"]["at"]) == last_failure[0]

    # Pruning the raw results past a day keeps every figure (the summaries stay).
    async with open_database(url) as db:
        pruned = await Monitoring(db).prune(
            keep=timedelta(days=1),
            keep_summaries=timedelta(days=400),
            keep_dead_letters=timedelta(days=30),
        )
    assert pruned["runs"] > 300
    left = sql(url, "SELECT count(*) FROM podium_check_results")[0][0]
    assert left < 10
    [after] = await anyio.to_thread.run_sync(_checks_json, config)
    assert after["uptime"] == summary["uptime"]
    assert after["response_ms_24h"] == summary["response_ms_24h"]
