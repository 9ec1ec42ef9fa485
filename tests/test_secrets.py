"""Secrets stay secret: never in logs, the journal tables or the run result, while the
failing URL is still recorded, with ``***`` where the secret was."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from podium.connectors import ConnectorConfig, HttpConnector, RetryPolicy
from podium.orchestrator import RunResult, run
from podium.pipeline import Check, Fetch, Pipeline, Store

from .conftest import podium_logging
from .servers import status_app

pytestmark = pytest.mark.anyio

BEARER = "s3cr3t-bearer-7f2a9c"
QUERY_KEY = "k3y-query-91b0d4"
OTHER_KEY = "plain-0a8e55c2"  # sent under a parameter name that says nothing about secrets
SECRETS = (BEARER, QUERY_KEY, OTHER_KEY)
JOURNAL = ("podium_runs", "podium_run_events", "podium_check_results")


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Every log record of the test, serialized whole (message, extra, exception)."""
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", serialize=True)
    with podium_logging():
        yield lines
    logger.remove(sink)


def connectors(base: str) -> list[HttpConnector]:
    retry = RetryPolicy(attempts=2, backoff=0.01)

    def config(auth: dict[str, Any]) -> ConnectorConfig:
        return ConnectorConfig(kind="http", base_url=base, auth=auth, retry=retry)

    return [
        HttpConnector("bearer", config({"type": "bearer", "token": BEARER})),
        HttpConnector(
            "keyed",
            config({"type": "api_key", "name": "api_key", "value": QUERY_KEY, "in": "query"}),
        ),
        HttpConnector(
            "other", config({"type": "api_key", "name": "q", "value": OTHER_KEY, "in": "query"})
        ),
    ]


def fetch(name: str, connector: str, code: str, count: int = 2) -> Fetch:
    return Fetch(
        name=name,
        connector=connector,
        for_each={"range": [0, count]},
        as_="n",
        path=f"/status/{code}/{{n}}",
        records="items",
    )


def journal_text(url: str) -> str:
    """Every value of every row of the journal tables, as text."""
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        return "\n".join(
            repr(row) for table in JOURNAL for row in db.execute(f"select * from {table}")
        )


def result_text(result: RunResult) -> str:
    return "\n".join(
        [
            str(result.run.error),
            result.run.model_dump_json(),
            *(e.model_dump_json() for e in result.events),
            *(c.model_dump_json() for c in result.checks),
        ]
    )


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked into {where}"


async def test_failed_requests_leave_no_secret_behind(
    serve: Callable[..., Any], sqlite_url: str, logs: list[str]
) -> None:
    app, seen = status_app()
    base = await serve(app)
    pipeline = Pipeline(
        name="secrets",
        stages=[
            fetch("bearer_500", "bearer", "500"),
            fetch("bearer_404", "bearer", "404"),
            fetch("keyed_500", "keyed", "500"),
            fetch("keyed_404", "keyed", "404"),
            fetch("keyed_drop", "keyed", "drop", count=1),
            fetch("other_404", "other", "404"),
            fetch("keyed_ok", "keyed", "200"),
            Check(name="has_rows", inputs=("keyed_ok",), expect="id < `0`", severity="warn"),
            Store(name="save", inputs=("has_rows",), table="ok", key=["id"]),
        ],
    )

    result = await run(pipeline, connectors(base), database=sqlite_url)

    # The secrets really went out: otherwise their absence below would prove nothing.
    queries = [entry["query"] for entry in seen.log]
    assert {"api_key": QUERY_KEY} in queries and {"q": OTHER_KEY} in queries
    assert result.status == "failed"
    assert result.run.error is not None
    assert result.run.stored == 2
    assert [c.failed for c in result.checks] == [2]

    assert_no_secret("\n".join(logs), "the logs")
    assert_no_secret(journal_text(sqlite_url), "the journal tables")
    assert_no_secret(result_text(result), "the run result")

    # The failures are recorded with their URLs, the secret masked.
    urls = {(e.stage, e.detail["url"]) for e in result.events if e.kind == "request_failed"}
    assert urls == {
        *(("bearer_500", f"{base}/status/500/{n}") for n in range(2)),
        *(("bearer_404", f"{base}/status/404/{n}") for n in range(2)),
        *(("keyed_500", f"{base}/status/500/{n}?api_key=***") for n in range(2)),
        *(("keyed_404", f"{base}/status/404/{n}?api_key=***") for n in range(2)),
        ("keyed_drop", f"{base}/status/drop/0?api_key=***"),
        *(("other_404", f"{base}/status/404/{n}?q=***") for n in range(2)),
    }
    journal = journal_text(sqlite_url)
    assert f"{base}/status/404/1?api_key=***" in journal
    assert f"{base}/status/404/0?q=***" in journal
    # The retries' log lines name the URL too, masked.
    assert any("/status/500/0?api_key=***" in line for line in logs)


async def test_response_check_samples_leave_no_secret_behind(
    serve: Callable[..., Any], sqlite_url: str, logs: list[str]
) -> None:
    app, _seen = status_app()
    base = await serve(app)
    pipeline = Pipeline(
        name="response_check",
        stages=[
            fetch("keyed_ok", "keyed", "200"),
            fetch("other_ok", "other", "200"),
            Check(name="created", inputs=("keyed_ok",), on="responses", expect="status == `201`"),
            Check(name="created2", inputs=("other_ok",), on="responses", expect="status == `201`"),
        ],
    )

    result = await run(pipeline, connectors(base), database=sqlite_url)

    assert result.status == "failed"
    assert [c.failed for c in result.checks] == [2, 2]
    samples = [s for c in result.checks for s in c.samples]
    assert len(samples) == 4
    assert_no_secret("\n".join(logs), "the logs")
    assert_no_secret(journal_text(sqlite_url), "the journal tables")
    assert_no_secret(result_text(result), "the run result")
    assert {s["url"] for s in samples} == {
        *(f"{base}/status/200/{n}?api_key=***" for n in range(2)),
        *(f"{base}/status/200/{n}?q=***" for n in range(2)),
    }
