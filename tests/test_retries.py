"""Retries: transient failures are retried until every record arrives exactly once,
Retry-After is honoured, final failures are recorded, and the run's status follows policy."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from podium.connectors import ConnectorConfig, HttpConnector, RetryPolicy
from podium.orchestrator import RunResult, run
from podium.pipeline import Fetch, Pipeline, RunPolicy, Store

from .servers import flaky_app, status_app

pytestmark = pytest.mark.anyio

# Allowance for the two clocks (client sleep, server time.monotonic) and timer granularity.
CLOCK_SLOP = 0.05


def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        return db.execute(sql, args).fetchall()


def api(base: str, attempts: int = 4) -> HttpConnector:
    retry = RetryPolicy(attempts=attempts, backoff=0.01, max_backoff=0.05)
    return HttpConnector(
        "api", ConnectorConfig(kind="http", base_url=base, concurrency=8, retry=retry)
    )


def flaky_pipeline(mode: str, count: int) -> Pipeline:
    return Pipeline(
        name=f"flaky_{mode}",
        stages=[
            Fetch(
                name="fetch",
                connector="api",
                for_each={"range": [0, count]},
                as_="n",
                path=f"/flaky/{mode}/{{n}}",
                records="items",
            ),
            Store(name="save", table="flaky", key=["id"]),
        ],
    )


def status_pipeline(codes: list[str], max_failed_ratio: float = 0.1) -> Pipeline:
    return Pipeline(
        name="statuses",
        policy=RunPolicy(max_failed_ratio=max_failed_ratio),
        stages=[
            Fetch(
                name="fetch",
                connector="api",
                for_each=[{"code": code, "n": n} for n, code in enumerate(codes)],
                path="/status/{code}/{n}",
                records="items",
            ),
            Store(name="save", table="answers", key=["id"]),
        ],
    )


def failures_recorded(url: str, result: RunResult) -> list[tuple[str, dict[str, Any]]]:
    found = query(
        url,
        "select kind, message, detail from podium_run_events where run_id = ? order by id",
        result.run.id,
    )
    return [(kind, {**json.loads(detail), "message": msg}) for kind, msg, detail in found]


# mode, failures per URL, URLs
CASES = [
    pytest.param("500", 2, 20, id="500"),
    pytest.param("503", 1, 6, id="503-retry-after"),
    pytest.param("429", 1, 6, id="429-retry-after"),
    pytest.param("drop", 2, 20, id="drop"),
]


@pytest.mark.parametrize(("mode", "failures", "count"), CASES)
async def test_transient_failures_are_retried_and_counted(
    serve: Callable[..., Any], sqlite_url: str, mode: str, failures: int, count: int
) -> None:
    app, seen = flaky_app(failures)
    base = await serve(app)

    result = await run(flaky_pipeline(mode, count), [api(base)], database=sqlite_url)

    assert result.status == "ok", result.run.error
    assert query(sqlite_url, "select id from flaky order by n") == [
        (f"{mode}-{n}",) for n in range(count)
    ]
    assert result.run.stored == count
    assert result.run.failed_requests == 0
    # The server saw exactly the attempts podium says it made.
    assert seen.requests == count * (failures + 1)
    assert set(seen.hits.values()) == {failures + 1}
    assert result.run.retries == count * failures
    assert result.run.requests == count * (failures + 1)
    assert query(
        sqlite_url, "select status, retries, requests from podium_runs where id = ?", result.run.id
    ) == [("ok", count * failures, count * (failures + 1))]
    assert result.events == []


async def test_dropped_connections_still_deliver_every_record_once(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, seen = flaky_app(2)
    base = await serve(app)

    result = await run(flaky_pipeline("drop", 20), [api(base)], database=sqlite_url)

    assert result.status == "ok", result.run.error
    assert query(sqlite_url, "select id from flaky order by n") == [
        (f"drop-{n}",) for n in range(20)
    ]
    assert query(sqlite_url, "select count(*), count(distinct id) from flaky") == [(20, 20)]
    assert all(hits >= 3 for hits in seen.hits.values())
    assert result.run.retries >= 20


@pytest.mark.parametrize("mode", ["503", "429"])
async def test_retry_after_is_honoured(
    serve: Callable[..., Any], sqlite_url: str, mode: str
) -> None:
    app, seen = flaky_app(1)
    base = await serve(app)

    result = await run(flaky_pipeline(mode, 4), [api(base)], database=sqlite_url)

    assert result.status == "ok", result.run.error
    assert result.run.stored == 4
    assert len(seen.times) == 4
    for url, times in seen.times.items():
        assert len(times) == 2, url
        # Retry-After: 1 — the backoff alone (0.01 s) would have retried far sooner.
        assert times[1] - times[0] >= 1.0 - CLOCK_SLOP, url


async def test_a_404_is_not_retried_and_is_recorded_with_its_url(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, seen = status_app()
    base = await serve(app)
    codes = ["200"] * 9 + ["404"]

    result = await run(status_pipeline(codes), [api(base)], database=sqlite_url)

    assert seen.hits[f"/status/404/{len(codes) - 1}"] == 1
    assert seen.requests == len(codes)
    assert result.run.retries == 0
    assert result.run.failed_requests == 1
    assert result.status == "partial"  # 1 of 10 failed: not more than max_failed_ratio 0.1
    assert query(sqlite_url, "select id from answers order by id") == [(n,) for n in range(9)]
    [(kind, detail)] = failures_recorded(sqlite_url, result)
    assert kind == "request_failed"
    assert detail["url"] == f"{base}/status/404/9"
    assert detail["status"] == 404
    assert "HTTP 404" in detail["message"]
    assert [(e.kind, e.detail["url"]) for e in result.events] == [
        ("request_failed", f"{base}/status/404/9")
    ]


@pytest.mark.parametrize(
    ("not_found", "max_failed_ratio", "status"),
    [
        (1, 0.1, "partial"),  # exactly at the threshold
        (2, 0.1, "failed"),
        (2, 0.25, "partial"),
        (3, 0.25, "failed"),
        (1, 0.0, "failed"),
    ],
)
async def test_failed_ratio_decides_partial_or_failed(
    serve: Callable[..., Any],
    sqlite_url: str,
    not_found: int,
    max_failed_ratio: float,
    status: str,
) -> None:
    app, seen = status_app()
    base = await serve(app)
    codes = ["404"] * not_found + ["200"] * (10 - not_found)

    result = await run(status_pipeline(codes, max_failed_ratio), [api(base)], database=sqlite_url)

    assert result.status == status, result.run.error
    assert seen.requests == 10
    assert result.run.failed_requests == not_found
    assert query(sqlite_url, "select status, failed_requests from podium_runs") == [
        (status, not_found)
    ]
    if status == "failed":
        assert result.run.error == (
            f"{not_found} of 10 requests failed: more than the policy's max_failed_ratio "
            f"of {max_failed_ratio:g} — {not_found}× HTTP 404 (first GET {base}/status/404/0; "
            """it answered '{"error": "status 404"}')"""
        )
    else:
        assert result.run.error is None
    urls = {d["url"] for _, d in failures_recorded(sqlite_url, result)}
    assert urls == {f"{base}/status/404/{n}" for n in range(not_found)}
    # What the other fetches stored stays stored, whatever the run's status.
    assert query(sqlite_url, "select count(*) from answers") == [(10 - not_found,)]


async def test_a_request_failing_past_its_attempts_is_recorded_and_stored_rows_stay(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, seen = status_app()
    base = await serve(app)
    codes = ["500", *["200"] * 9]

    result = await run(
        status_pipeline(codes, max_failed_ratio=0.0), [api(base, attempts=3)], database=sqlite_url
    )

    assert result.status == "failed"
    assert seen.hits["/status/500/0"] == 3
    assert result.run.retries == 2
    assert result.run.requests == 9 + 3
    assert result.run.failed_requests == 1
    [(kind, detail)] = failures_recorded(sqlite_url, result)
    assert kind == "request_failed"
    assert detail["url"] == f"{base}/status/500/0"
    assert detail["status"] == 500
    assert "HTTP 500 after 3 attempts" in detail["message"]
    assert query(sqlite_url, "select id from answers order by id") == [(n,) for n in range(1, 10)]
    assert result.run.stored == 9


async def test_a_dropped_connection_gets_exactly_its_attempts(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, seen = status_app()
    base = await serve(app)

    result = await run(
        status_pipeline(["drop", "200"], max_failed_ratio=1.0),
        [api(base, attempts=3)],
        database=sqlite_url,
    )

    assert result.status == "partial"
    [(kind, detail)] = failures_recorded(sqlite_url, result)
    assert kind == "request_failed"
    assert detail["url"] == f"{base}/status/drop/0"
    assert "after 3 attempts" in detail["message"]
    assert seen.hits["/status/drop/0"] == 3
