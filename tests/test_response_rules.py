"""Response rules and backoff strategies against a real server: each action stores exactly
the server's records, counts what it should, and waits as long as it says."""

from __future__ import annotations

import itertools
import random
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner

from podium.cli import app as cli
from podium.connectors import ConnectorConfig, HttpConnector, Response, RetryPolicy, first_match
from podium.connectors import Request as Req
from podium.orchestrator import RunResult, run
from podium.orchestrator.http import Accept, GiveUp, Retry, backoff, decide_answer
from podium.pipeline import Fetch, Pipeline, RunPolicy, Store

from .config_helpers import config, one_line_error

pytestmark = pytest.mark.anyio

SLOP = 0.02  # the client's sleep and the server's clock, and timer granularity


class Things:
    """``/things/{n}``: ``{"items": [{"id": n}]}``, unless ``script[n]`` says otherwise: a
    list of (status, body, headers) answers given in turn, the last one repeated."""

    def __init__(self, script: dict[int, list[tuple[int, Any, dict[str, str]]]]) -> None:
        self.script = script
        self.hits: Counter[int] = Counter()
        self.times: dict[int, list[float]] = defaultdict(list)
        self.all_times: list[float] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/things/{n}", self.handler)
        return app

    async def handler(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        now = time.monotonic()
        self.hits[n] += 1
        self.times[n].append(now)
        self.all_times.append(now)
        answers = self.script.get(n)
        if not answers:
            return web.json_response({"items": [{"id": n}]})
        status, body, headers = answers[min(self.hits[n], len(answers)) - 1]
        return web.json_response(body, status=status, headers=headers)


def pipeline(count: int, rules: list[dict[str, Any]] | None = None) -> Pipeline:
    return Pipeline(
        name="things",
        policy=RunPolicy(max_failed_ratio=0.5),
        stages=[
            Fetch(
                name="get",
                connector="api",
                for_each={"range": [0, count]},
                as_="n",
                path="/things/{n}",
                records="items",
                rules=rules,
            ),
            Store(name="save", table="things", key=["id"]),
        ],
    )


def connector(base: str, **config: Any) -> HttpConnector:
    retry = config.pop("retry", {"backoff": 0.01, "max_backoff": 0.02})
    return HttpConnector(
        "api",
        ConnectorConfig.model_validate(
            {"kind": "http", "base_url": base, "concurrency": 4, "retry": retry, **config}
        ),
    )


def stored(url: str) -> list[int]:
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as db:
        return [r[0] for r in db.execute("select id from things order by id")]


async def go(
    serve: Callable[..., Any],
    url: str,
    things: Things,
    count: int,
    fetch_rules: list[dict[str, Any]] | None = None,
    **config: Any,
) -> RunResult:
    """Run ``count`` items; ``fetch_rules`` are the fetch's, ``config`` the connector's."""
    base = await serve(things.app())
    return await run(pipeline(count, fetch_rules), [connector(base, **config)], database=url)


BUSY = (200, {"error": "busy"}, {})


async def test_retry_on_a_busy_body_then_its_records(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    things = Things({3: [BUSY, BUSY, (200, {"items": [{"id": 3}]}, {})]})
    rules = [{"when": "body.error == 'busy'", "action": "retry"}]
    result = await go(serve, sqlite_url, things, 6, rules)
    assert result.status == "ok", result.run.error
    assert stored(sqlite_url) == [0, 1, 2, 3, 4, 5]
    assert things.hits[3] == 3
    assert result.stats.retries == 2


async def test_retry_gives_up_after_the_policys_attempts(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    things = Things({2: [BUSY]})
    rules = [{"when": "body.error == 'busy'", "action": "retry", "message": "API busy"}]
    result = await go(serve, sqlite_url, things, 4, rules,
                      retry={"attempts": 3, "backoff": 0.01})  # fmt: skip
    assert result.status == "partial"
    assert stored(sqlite_url) == [0, 1, 3]
    assert things.hits[2] == 3
    assert [d.cause for d in result.dead_letters] == ["API busy after 3 attempts"]


async def test_ignore_a_404_stores_the_other_records_and_counts_it(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    gone = (404, {"error": "deleted"}, {})
    things = Things({1: [gone], 4: [gone]})
    # The fetch's rule comes before the connector's, which would fail a 404.
    result = await go(serve, sqlite_url, things, 6, [{"when": [404], "action": "ignore"}],
                      rules=[{"when": "4xx", "action": "fail"}])  # fmt: skip
    assert result.status == "ok", result.run.error
    assert stored(sqlite_url) == [0, 2, 3, 5]
    stage = result.stats.stages["get"]
    assert (stage.ignored, stage.failed, stage.records_out) == (2, 0, 4)
    assert result.stats.counts()["stages"]["get"]["ignored"] == 2
    assert things.hits[1] == 1  # ignored, not retried
    assert result.dead_letters == []


async def test_fail_on_a_200_that_says_not_ok_is_a_named_failure(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    things = Things({2: [(200, {"ok": False, "items": [{"id": 2}]}, {})]})
    rules = [{"when": "body.ok == `false`", "action": "fail", "message": "the API said ok=false"}]
    result = await go(serve, sqlite_url, things, 5, rules=rules)  # a connector rule
    assert result.status == "partial"
    assert stored(sqlite_url) == [0, 1, 3, 4]
    assert result.stats.stages["get"].failed == 1
    failures = [e for e in result.events if e.kind == "request_failed"]
    assert len(failures) == 1
    assert "the API said ok=false" in failures[0].message
    assert [d.cause for d in result.dead_letters] == ["the API said ok=false"]
    assert things.hits[2] == 1  # a failure is final


async def test_rate_limited_pauses_the_whole_connector(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    slow_down = (200, {"error": "slow down"}, {"Retry-After": "0.4"})
    things = Things({0: [slow_down, (200, {"items": [{"id": 0}]}, {})]})
    rules = [{"when": "body.error == 'slow down'", "action": "rate_limited"}]
    result = await go(serve, sqlite_url, things, 12, rules, concurrency=1)
    assert result.status == "ok", result.run.error
    assert stored(sqlite_url) == list(range(12))
    first = things.times[0][0]
    # Nothing at all went to the API during the pause (a retry alone delays one item).
    during = [t for t in things.all_times if first < t < first + 0.4 - SLOP]
    assert during == [], during
    assert things.times[0][1] - first >= 0.4 - SLOP
    assert result.stats.retries == 1


async def test_rate_limited_pause_holds_other_workers(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """Four workers: once the answer is in, none of them sends until the pause ends."""
    slow_down = (200, {"error": "slow down"}, {"Retry-After": "0.4"})
    things = Things({0: [slow_down, (200, {"items": [{"id": 0}]}, {})]})
    rules = [{"when": "body.error == 'slow down'", "action": "rate_limited"}]
    result = await go(serve, sqlite_url, things, 40, rules, rate="100/s")
    assert result.status == "ok", result.run.error
    assert stored(sqlite_url) == list(range(40))
    first = things.times[0][0]
    # Requests already in flight may land just after; none later within the pause.
    during = [t for t in things.all_times if first + 0.05 < t < first + 0.4 - SLOP]
    assert during == [], [round(t - first, 3) for t in during]
    # Held together, they do not leave together: the budget spaces them after the pause.
    after = sorted(t for t in things.all_times if t >= first + 0.4 - SLOP)
    assert len(after) >= 30
    crowded = max(sum(1 for u in after if t <= u < t + 0.1) for t in after)
    assert crowded <= 11, crowded  # 100/s: 10 in 100 ms, and the one on its edge


async def test_success_accepts_a_409_and_reads_its_records(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    things = Things({3: [(409, {"items": [{"id": 3}], "note": "already there"}, {})]})
    result = await go(serve, sqlite_url, things, 5, [{"when": [409], "action": "success"}])
    assert result.status == "ok", result.run.error
    assert stored(sqlite_url) == [0, 1, 2, 3, 4]
    assert result.dead_letters == []

    # Without the rule, the 409 is a failure.
    things.hits.clear()
    without = await go(serve, sqlite_url.replace(".db", "-2.db"), things, 5)
    assert without.status == "partial"
    assert [d.status for d in without.dead_letters] == [409]


async def test_constant_backoff_waits_the_same_each_time(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    err = (500, {"error": "oops"}, {})
    things = Things({0: [err, err, err, (200, {"items": [{"id": 0}]}, {})]})
    retry = {"attempts": 5, "backoff": 0.15, "jitter": 0, "backoff_strategy": "constant"}
    result = await go(serve, sqlite_url, things, 1, retry=retry)
    assert result.status == "ok", result.run.error
    times = things.times[0]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert all(gap >= 0.15 - SLOP for gap in gaps), gaps
    # Exponential would have waited 0.6 s before the last attempt.
    assert gaps[2] < 0.45, gaps


async def test_header_backoff_waits_what_the_named_header_says(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    busy = (503, {"error": "busy"}, {"X-Retry-In": "0.35"})
    things = Things({0: [busy, busy, (200, {"items": [{"id": 0}]}, {})]})
    retry = {"backoff": 0.01, "backoff_strategy": "header", "backoff_header": "X-Retry-In"}
    result = await go(serve, sqlite_url, things, 1, retry=retry)
    assert result.status == "ok", result.run.error
    times = things.times[0]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 2 and all(gap >= 0.35 - SLOP for gap in gaps), gaps


def answer(status: int, body: bytes = b"{}", **headers: str) -> Response:
    return Response(Req("GET", "http://x/"), status, headers, body, "http://x/", 0.0)


def test_the_decision_is_pure() -> None:
    policy = RetryPolicy(attempts=3, backoff=0.1, jitter=0)
    rules = ConnectorConfig.model_validate(
        {"kind": "http", "rules": [
            {"when": [404, "410"], "action": "ignore"},
            {"when": "5xx", "action": "success"},
            {"when": "body.error == 'busy'", "action": "retry", "message": "busy"},
            {"when": "headers.\"x-slow\" == 'yes'", "action": "rate_limited"},
            {"when": "status == `200` && body.ok == `false`", "action": "fail"},
        ]}
    ).rules  # fmt: skip
    ok = answer(200, b'{"ok": true}')
    assert first_match(rules, ok) is None
    assert decide_answer(policy, 1, 200, ok.headers, None) is None
    gone = answer(410)
    assert decide_answer(policy, 1, 410, gone.headers, first_match(rules, gone)) == Accept(True)
    assert decide_answer(policy, 1, 502, {}, first_match(rules, answer(502))) == Accept()
    busy = answer(200, b'{"error": "busy"}')
    rule = first_match(rules, busy)
    assert decide_answer(policy, 1, 200, busy.headers, rule) == Retry(0.1, "busy")
    assert decide_answer(policy, 3, 200, busy.headers, rule) == GiveUp("busy after 3 attempts")
    slow = answer(200, b"{}", **{"X-Slow": "yes", "Retry-After": "2"})
    assert decide_answer(policy, 1, 200, slow.headers, first_match(rules, slow)) == Retry(
        2.0,
        "HTTP 200, response rule (when = 'headers.\"x-slow\" == \\'yes\\'', "
        "action = 'rate_limited')",
        pause=True,
    )
    bad = answer(200, b'{"ok": false}')
    decision = decide_answer(policy, 1, 200, bad.headers, first_match(rules, bad))
    assert isinstance(decision, GiveUp) and "action = 'fail'" in decision.reason
    # The strategies, without a server.
    rng = random.Random(1)
    flat = RetryPolicy(backoff=0.2, jitter=0, backoff_strategy="constant")
    assert [backoff(flat, a, rng) for a in (1, 2, 3)] == [0.2, 0.2, 0.2]
    told = RetryPolicy(backoff=0.2, jitter=0, backoff_strategy="header", backoff_header="X-In")
    assert backoff(told, 1, rng, answer(503, **{"X-In": "7"}).headers) == 7
    assert backoff(told, 2, rng, answer(503).headers) == 0.4  # no header: exponential


BAD_CONFIGS = [
    ("rate", 'rate = "fast"', "", "connectors.api.rate: 'fast' is not a rate"),
    ("route rate", '[[connectors.api.rates]]\npath = "/s/*"\nrate = "9/week"', "",
     "connectors.api.rates[0].rate: '9/week' is not a rate"),
    ("route without scope", '[[connectors.api.rates]]\nrate = "9/s"', "",
     "connectors.api.rates[0]: a [[rates]] entry needs a 'host' or a 'path'"),
    ("on_quota", 'on_quota = "sleep"', "", "connectors.api.on_quota"),
    ("connector action", 'rules = [{ when = [404], action = "ignroe" }]', "",
     "connectors.api.rules[0].action"),
    ("fetch action", "", 'rules = [{ when = [404], action = "ignroe" }]',
     "rules[0].action: unknown action 'ignroe' (did you mean 'ignore'?) (actions: retry, "
     "ignore, fail, rate_limited, success)"),
    ("fetch JMESPath", "", 'rules = [{ when = "body.error ==", action = "retry" }]',
     "rules[0].when: invalid JMESPath expression 'body.error =='"),
    ("connector JMESPath", 'rules = [{ when = "body[?", action = "retry" }]', "",
     "connectors.api.rules[0].when: invalid JMESPath expression 'body[?'"),
    ("not a status", "", 'rules = [{ when = [404, "4x"], action = "ignore" }]',
     "(get): rules[0].when: '4x' is not a status"),
    ("when of a wrong type", 'rules = [{ when = 3.5, action = "retry" }]', "",
     "connectors.api.rules[0].when: give a status (404), a status class"),
    ("backoff strategy", '[connectors.api.retry]\nbackoff_strategy = "linear"', "",
     "connectors.api.retry.backoff_strategy"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "connector", "fetch", "expected"), BAD_CONFIGS,
                         ids=[c[0] for c in BAD_CONFIGS])  # fmt: skip
def test_a_bad_rate_or_rule_is_one_line_naming_the_key(
    tmp_path: Path, case: str, connector: str, fetch: str, expected: str
) -> None:
    line = one_line_error(tmp_path, "validate", connector_extra=connector, fetch_extra=fetch)
    assert expected in line, line
    assert str(tmp_path / "config.toml") in line


def test_a_good_config_with_rates_and_rules_validates(tmp_path: Path) -> None:
    connector = (
        'rate = "600/min"\nburst = 5\non_quota = "stop"\nmax_wait = 30\n'
        'rules = [{ when = "5xx", action = "retry" }]\n'
        '[[connectors.api.rates]]\npath = "/search/*"\nrate = "30/min"\n'
        '[connectors.api.retry]\nbackoff_strategy = "header"\nbackoff_header = "X-Retry-In"'
    )
    fetch = 'rules = [{ when = [404], action = "ignore" }, { when = "body.ok == `false`", action = "fail", message = "not ok" }]'  # noqa: E501
    path = tmp_path / "config.toml"
    path.write_text(config(tmp_path, connector_extra=connector, fetch_extra=fetch))
    result = CliRunner().invoke(cli, ["validate", "--config", str(path)])
    assert result.exit_code == 0, result.stderr
