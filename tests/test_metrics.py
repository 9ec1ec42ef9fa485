"""Request metrics: the gateway's latency histograms and error counters, exposed by the
daemon's ``/metrics`` — against real servers on 127.0.0.1, read back with
prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from podium.connectors import ConnectorConfig, HttpConnector, RetryPolicy
from podium.jobs import Daemon
from podium.orchestrator import RunResult, run
from podium.orchestrator._run_metrics import run_registry
from podium.orchestrator.http import LATENCY_BUCKETS
from podium.pipeline import Fetch, Pipeline

from .daemon_helpers import free_port, read_runs, wait_for, write_config
from .servers import Seen, items_app, slow_app, status_app

pytestmark = pytest.mark.anyio

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
DURATION = "podium_request_duration_seconds"
ERRORS = "podium_request_errors_total"
LAST_SUCCESS = "podium_pipeline_last_success_timestamp_seconds"
FAMILIES = {
    "podium_request_duration_seconds": "histogram",
    "podium_request_errors": "counter",
    "podium_pipeline_last_success_timestamp_seconds": "gauge",
    "podium_check_up": "gauge",
    "podium_check_last_success_timestamp_seconds": "gauge",
}


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """Family name → type, and every sample by (name, sorted labels)."""
    families = list(text_string_to_metric_families(text))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    return {f.name: f.type for f in families}, samples


def label(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def buckets(samples: Samples, connector: str) -> list[float]:
    """The histogram's cumulative bucket counts, in the order of LATENCY_BUCKETS, +Inf last."""
    bounds = [repr(float(b)) for b in LATENCY_BUCKETS] + ["+Inf"]
    return [samples[(f"{DURATION}_bucket", label(connector=connector, le=b))] for b in bounds]


def timed_app(delay: float) -> tuple[web.Application, Seen]:
    """``/items/{n}`` answers after ``delay``; ``/moved/{n}`` redirects there at once.
    ``seen.requests`` counts every exchange, redirects included."""
    seen = Seen()
    app = web.Application()

    async def items(request: web.Request) -> web.Response:
        seen.requests += 1
        await asyncio.sleep(delay)
        return web.json_response({"items": [{"id": int(request.match_info["n"])}]})

    async def moved(request: web.Request) -> web.Response:
        seen.requests += 1
        raise web.HTTPFound(f"/items/{request.match_info['n']}")

    app.router.add_get("/items/{n}", items)
    app.router.add_get("/moved/{n}", moved)
    return app, seen


def connector(base: str, *, attempts: int = 1, timeout: float = 10.0) -> HttpConnector:
    retry = RetryPolicy(attempts=attempts, backoff=0.01, max_backoff=0.02)
    config = ConnectorConfig(kind="http", base_url=base, retry=retry, timeout=timeout)
    return HttpConnector("api", config)


def fetching(path: str, items: list[dict[str, Any]]) -> Pipeline:
    """One request per item, to ``path`` filled in with it."""
    return Pipeline(
        name="p",
        stages=[Fetch(name="get", connector="api", for_each=items, path=path, records="items")],
    )


async def run_and_expose(
    pipeline: Pipeline, api: HttpConnector, url: str
) -> tuple[RunResult, Samples]:
    result = await run(pipeline, [api], database=url)
    families, samples = parse(generate_latest(run_registry(result)).decode())
    assert families == FAMILIES
    return result, samples


# -- the engine ---------------------------------------------------------------------------------
async def test_the_histogram_counts_every_exchange_the_server_saw(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, seen = timed_app(delay=0.03)
    api = connector(await serve(app))
    # 4 direct, 3 through a redirect: 10 exchanges, each at least 30 ms or a redirect.
    items = [{"route": "items" if n < 4 else "moved", "n": n} for n in range(7)]
    result, samples = await run_and_expose(fetching("/{route}/{n}", items), api, sqlite_url)
    assert result.status == "ok"
    assert seen.requests == 10
    stats = result.stats.connectors["api"]
    assert sum(stats.latency) == stats.requests == 10
    counts = buckets(samples, "api")
    assert counts == sorted(counts)  # cumulative
    assert counts[-1] == samples[(f"{DURATION}_count", label(connector="api"))] == 10
    # Only the 3 redirects can have been faster than 25 ms; every answer took 30 ms or more.
    assert counts[LATENCY_BUCKETS.index(0.025)] <= 3
    assert counts[-1] - counts[LATENCY_BUCKETS.index(0.025)] >= 7
    assert samples[(f"{DURATION}_sum", label(connector="api"))] == pytest.approx(stats.seconds)
    assert stats.seconds >= 7 * 0.03
    assert not stats.errors
    finished = result.run.finished_at
    assert finished is not None
    assert samples[(LAST_SUCCESS, label(pipeline="p"))] == finished.timestamp()


@pytest.mark.parametrize(
    ("case", "kind", "attempts", "server_saw"),
    [
        ("refused", "connection", 2, 0),
        ("timeout", "timeout", 2, 2),
        ("503", "status_5xx", 2, 2),  # retried: the policy's statuses include 503
        ("404", "status_4xx", 1, 1),  # final at once
    ],
)
async def test_errors_are_counted_per_attempt_by_kind(
    serve: Callable[..., Any],
    sqlite_url: str,
    case: str,
    kind: str,
    attempts: int,
    server_saw: int,
) -> None:
    seen, timeout = Seen(), 10.0
    if case == "refused":
        base, path = f"http://127.0.0.1:{free_port()}", "/items/{n}"
    elif case == "timeout":
        app, seen = slow_app(delay=5)  # far longer than the connector's timeout
        base, path, timeout = await serve(app), "/slow/{n}", 0.3
    else:
        app, seen = status_app()
        base, path = await serve(app), f"/status/{case}/{{n}}"
    api = connector(base, attempts=2, timeout=timeout)
    result, samples = await run_and_expose(fetching(path, [{"n": 1}]), api, sqlite_url)
    assert result.status == "failed"  # its one request failed for good
    assert seen.requests == server_saw
    assert dict(result.stats.connectors["api"].errors) == {kind: attempts}
    assert samples[(ERRORS, label(connector="api", kind=kind))] == attempts
    answered = attempts if case in ("503", "404") else 0
    assert samples[(f"{DURATION}_count", label(connector="api"))] == answered
    assert (LAST_SUCCESS, label(pipeline="p")) not in samples  # a failed run is no success


# -- the daemon ---------------------------------------------------------------------------------
DAEMON_PIPELINES = """
[connectors.down]
kind = "http"
base_url = "http://127.0.0.1:{port}"
retry = {{ attempts = 1 }}

[pipelines.good]
schedule = {{ interval = "1s" }}

[[pipelines.good.stages]]
name = "items"
kind = "fetch"
connector = "api"
for_each = {{ range = [0, 2] }}
as = "page"
path = "/items/{{page}}"
records = "items"

[[pipelines.good.stages]]
name = "has_id"
kind = "check"
expect = "id >= `0`"

[[pipelines.good.stages]]
name = "small"
kind = "check"
expect = "id < `5`"
severity = "warn"

[pipelines.broken]
schedule = {{ interval = "1s" }}

[[pipelines.broken.stages]]
name = "items"
kind = "fetch"
connector = "down"
path = "/items/0"
records = "items"

[[pipelines.broken.stages]]
name = "has_name"
kind = "check"
expect = "name != null"
"""


async def test_the_daemon_exposes_request_error_success_and_check_metrics(
    serve: Callable[..., Any], tmp_path: Path, sqlite_url: str
) -> None:
    # good: 2 requests a run; its warn check "small" fails for ids 5..9, so its runs end
    # partial — a success. broken: its one request is refused, so its runs fail.
    app, seen = items_app(pages=2, per_page=5)
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url=await serve(app),
        pipelines=DAEMON_PIPELINES.format(port=free_port()),
    )
    daemon = Daemon(config, node_id="metrics")
    async with anyio.create_task_group() as tg, aiohttp.ClientSession() as http:
        await tg.start(daemon.run)

        def finished(pipeline: str) -> bool:
            return any(r.status != "running" for r in read_runs(sqlite_url, pipeline))

        await wait_for(lambda: finished("good") and finished("broken"), 20, what="both to run")
        async with http.get(f"http://127.0.0.1:{daemon.port}/metrics") as response:
            assert response.status == 200
            text = await response.text()
        daemon.stop()
    families, samples = parse(text)
    assert {name: families[name] for name in FAMILIES} == FAMILIES

    def runs_of(pipeline: str) -> float:
        return sum(
            value
            for (name, labels), value in samples.items()
            if name == "podium_runs_total" and ("pipeline", pipeline) in labels
        )

    good_runs, broken_runs = runs_of("good"), runs_of("broken")
    assert good_runs >= 1 and broken_runs >= 1
    assert samples[("podium_runs_total", label(pipeline="good", status="partial"))] == good_runs
    # Finished runs only, accumulated over every one of them: the same scrape agrees.
    counts = buckets(samples, "api")
    assert counts[-1] == samples[(f"{DURATION}_count", label(connector="api"))] == 2 * good_runs
    assert counts[-1] <= seen.requests
    assert samples[(ERRORS, label(connector="down", kind="connection"))] == broken_runs
    assert (f"{DURATION}_count", label(connector="down")) in samples  # 0 answered
    assert samples[(f"{DURATION}_count", label(connector="down"))] == 0
    # last success: good's partial runs count, broken has none
    last_good = samples[(LAST_SUCCESS, label(pipeline="good"))]
    assert daemon.started_at.timestamp() <= last_good <= time.time()
    assert (LAST_SUCCESS, label(pipeline="broken")) not in samples
    up = "podium_check_up"
    assert samples[(up, label(pipeline="good", check="has_id"))] == 1
    assert samples[(up, label(pipeline="good", check="small"))] == 0
    checked_at = "podium_check_last_success_timestamp_seconds"
    assert (checked_at, label(pipeline="good", check="has_id")) in samples
    assert (checked_at, label(pipeline="good", check="small")) not in samples
    # broken's record check saw no record: not evaluated, so no gauge at all
    assert (up, label(pipeline="broken", check="has_name")) not in samples
