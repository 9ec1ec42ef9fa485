"""The transport seam: pipelines and the gateway run on ``podium.testing`` with no socket,
and the retry decision is a pure function, tested on its own."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import podium
from podium.connectors import RetryPolicy
from podium.orchestrator.http import GiveUp, Retry, backoff, decide_failure, decide_status
from podium.testing import FakeConnector, MockTransport, reply, run, stored_rows

_CONNECTS: list[Any] = []
_WATCHING = [False]


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _WATCHING[0]:
        _CONNECTS.append(args[1])


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one only records


@pytest.fixture
def no_socket() -> Iterator[list[Any]]:
    """Every socket connect made during the test (the asyncio loop's own self-pipe is a
    socketpair, which connects nothing)."""
    _CONNECTS.clear()
    _WATCHING[0] = True
    yield _CONNECTS
    _WATCHING[0] = False


def items_pipeline() -> podium.Pipeline:
    return podium.Pipeline(
        name="items",
        stages=[
            podium.Fetch(
                name="pages",
                connector="api",
                path="/items",
                records="items",
                paginate={"type": "page_number", "total_pages": "pages"},
            ),
            podium.Store(name="save", table="items", key="id"),
        ],
    )


@pytest.mark.anyio
async def test_a_pipeline_runs_on_a_fake_connector_with_no_socket(
    sqlite_url: str, no_socket: list[Any]
) -> None:
    def page(request: podium.Request) -> Any:
        n = int(request.params["page"])
        return reply(json={"pages": 3, "items": [{"id": n * 10 + i} for i in range(2)]})

    api = FakeConnector("api", {"GET /items": page})
    result = await run(items_pipeline(), [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert api.calls == ["GET /items"] * 3
    assert [r["id"] for r in await stored_rows(sqlite_url, "items")] == [10, 11, 20, 21, 30, 31]
    assert no_socket == []


@pytest.mark.anyio
async def test_the_gateway_retries_and_pauses_on_a_mock_transport(
    sqlite_url: str, no_socket: list[Any]
) -> None:
    """503 with Retry-After, then a connection failure, then the answer: three attempts,
    two retries, and the run is ok — all decided by the gateway, none by a socket."""
    answers = iter(
        [
            reply(503, json={"error": "busy"}, headers={"Retry-After": "0"}),
            podium.ConnectError("connection refused"),
            reply(json={"pages": 1, "items": [{"id": 1}]}),
        ]
    )

    def handler(request: podium.Request) -> Any:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    api = podium.HttpConnector(
        "api",
        podium.ConnectorConfig(
            kind="http", base_url="https://api.test", retry=RetryPolicy(backoff=0.0)
        ),
    )
    transport = MockTransport(handler)
    result = await podium.run(items_pipeline(), [api], database=sqlite_url, transport=transport)
    assert result.status == "ok", result.run.error
    assert (result.run.requests, result.run.retries) == (3, 2)
    assert [r.url for r in transport.requests] == ["https://api.test/items"] * 3
    assert no_socket == []


def test_a_retry_after_on_429_or_503_pauses_the_connector() -> None:
    policy = RetryPolicy()
    assert decide_status(policy, 1, 503, "2") == Retry(2.0, "HTTP 503", pause=True)
    assert decide_status(policy, 1, 500, "2") == Retry(2.0, "HTTP 500", pause=False)
    assert decide_status(policy, 1, 200) is None
    assert decide_status(policy, 1, 404) is None  # final: not the policy's status


def test_attempts_run_out_with_a_reason() -> None:
    policy = RetryPolicy(attempts=2)
    assert decide_status(policy, 2, 503) == GiveUp("HTTP 503 after 2 attempts")
    assert decide_failure(policy, 2, "timed out") == GiveUp("timed out after 2 attempts")
    assert isinstance(decide_failure(policy, 1, "timed out"), Retry)


def test_a_long_retry_after_fails_at_once() -> None:
    decision = decide_status(RetryPolicy(max_retry_after=10), 1, 429, "3600")
    assert decision == GiveUp("HTTP 429 with Retry-After 3600s, more than max_retry_after (10s)")


def test_backoff_doubles_caps_and_jitters_within_bounds() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=3.0, jitter=0.25)
    rng = random.Random(7)
    waits = [backoff(policy, attempt, rng) for attempt in range(1, 7)]
    bases = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    for wait, base in zip(waits, bases, strict=True):
        assert base * 0.75 <= wait <= base * 1.25
    flat = RetryPolicy(backoff=0.5, jitter=0)
    assert [backoff(flat, a) for a in (1, 2, 3)] == [0.5, 1.0, 2.0]
