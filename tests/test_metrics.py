"""Request metrics: the gateway's latency histograms and error counters, exposed by the
daemon's ``/metrics`` and by ``podium run --metrics / --pushgateway`` — all against real
servers on 127.0.0.1, read back with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner, Result

from podium.cli import _publish
from podium.cli import app as cli
from podium.connectors import ConnectorConfig, HttpConnector, RetryPolicy
from podium.jobs import Daemon
from podium.orchestrator import RunResult, run
from podium.orchestrator._run_metrics import run_registry
from podium.orchestrator.http import LATENCY_BUCKETS
from podium.pipeline import Fetch, Pipeline

from .daemon_helpers import free_port, pipeline_toml, read_runs, wait_for, write_config
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


# -- podium run ---------------------------------------------------------------------------------
def flip_app() -> tuple[web.Application, dict[str, Any]]:
    """``/items/{n}``: one record, or the status in ``state["status"]`` when it is set."""
    state: dict[str, Any] = {"status": None, "requests": 0}
    app = web.Application()

    async def items(request: web.Request) -> web.Response:
        state["requests"] += 1
        if state["status"] is not None:
            return web.json_response({"error": "down"}, status=state["status"])
        return web.json_response({"items": [{"id": int(request.match_info["n"])}]})

    app.router.add_get("/items/{n}", items)
    return app, state


def cli_config(tmp_path: Path, base: str, pages: int = 3) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "podium.db"}"

[connectors.api]
kind = "http"
base_url = "{base}"
retry = {{ attempts = 1 }}

[pipelines.p]

[[pipelines.p.stages]]
name = "items"
kind = "fetch"
connector = "api"
for_each = {{ range = [0, {pages}] }}
as = "n"
path = "/items/{{n}}"
records = "items"

[[pipelines.p.stages]]
name = "has_id"
kind = "check"
expect = "id >= `0`"

[[pipelines.p.stages]]
name = "save"
kind = "store"
table = "items"
key = ["id"]
""",
        encoding="utf-8",
    )
    return path


async def podium_cli(*args: str) -> Result:
    """The CLI in-process, in a worker thread: it runs an event loop of its own, and the
    test's servers need this one to keep answering."""
    invoke = functools.partial(CliRunner().invoke, cli, list(args))
    return await anyio.to_thread.run_sync(invoke)


async def recorded_runs(config: Path) -> list[dict[str, Any]]:
    listed = await podium_cli("runs", "--config", str(config), "--json")
    assert listed.exit_code == 0, listed.output
    return orjson.loads(listed.stdout)  # type: ignore[no-any-return]


async def test_run_metrics_file_holds_this_runs_counts_and_keeps_the_last_success(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    app, state = flip_app()
    config = cli_config(tmp_path, await serve(app))
    out = tmp_path / "metrics" / "podium_p.prom"
    out.parent.mkdir()
    done = await podium_cli("run", "p", "--config", str(config), "--metrics", str(out))
    assert done.exit_code == 0, done.output
    assert "ok in" in " ".join(done.stdout.split())  # the summary, as without --metrics
    assert [p.name for p in out.parent.iterdir()] == ["podium_p.prom"]  # no temporary left
    families, samples = parse(out.read_text(encoding="utf-8"))
    assert families == FAMILIES
    assert samples[(f"{DURATION}_count", label(connector="api"))] == state["requests"] == 3
    assert buckets(samples, "api")[-1] == 3
    first_success = samples[(LAST_SUCCESS, label(pipeline="p"))]
    assert samples[("podium_check_up", label(pipeline="p", check="has_id"))] == 1

    # The API now fails: the run fails, its file says so, and still carries the last
    # success (from the journal) — a gauge gone with the failed run would silence an alert.
    state["status"] = 404
    failed = await podium_cli("run", "p", "--config", str(config), "--metrics", str(out))
    assert failed.exit_code == 1, failed.output
    _families, samples = parse(out.read_text(encoding="utf-8"))
    assert samples[(f"{DURATION}_count", label(connector="api"))] == 3  # this run's only
    assert samples[(ERRORS, label(connector="api", kind="status_4xx"))] == 3
    assert samples[(LAST_SUCCESS, label(pipeline="p"))] == first_success
    # the record check saw no record this time: not evaluated, no gauge
    assert ("podium_check_up", label(pipeline="p", check="has_id")) not in samples
    assert [r["status"] for r in await recorded_runs(config)] == ["failed", "ok"]  # newest first


async def test_run_metrics_to_stdout_keep_stdout_parseable(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    app, state = flip_app()
    config = cli_config(tmp_path, await serve(app))
    done = await podium_cli("run", "p", "--config", str(config), "--metrics", "-")
    assert done.exit_code == 0, done.output
    families, samples = parse(done.stdout)  # nothing but the exposition
    assert families == FAMILIES
    assert samples[(f"{DURATION}_count", label(connector="api"))] == state["requests"] == 3
    assert "ok in" in " ".join(done.stderr.split())  # the summary went to stderr

    both = await podium_cli("run", "p", "--config", str(config), "--metrics", "-", "--json")
    assert both.exit_code == 2
    assert "--json and --metrics - both write to stdout" in both.stderr
    assert state["requests"] == 3  # refused before the run


def pushgateway_app(
    status: int = 200, hang: asyncio.Event | None = None
) -> tuple[web.Application, list[dict[str, Any]]]:
    """A Pushgateway stand-in: records each push (method, path, body), answers ``status``
    — or, given ``hang``, answers nothing until it is set."""
    pushes: list[dict[str, Any]] = []
    app = web.Application()

    async def receive(request: web.Request) -> web.Response:
        pushes.append(
            {"method": request.method, "path": request.path, "body": await request.text()}
        )
        if hang is not None:
            await hang.wait()
        return web.Response(status=status, text="" if status < 400 else "boom")

    app.router.add_route("*", "/metrics/{tail:.*}", receive)
    return app, pushes


async def test_pushgateway_receives_the_runs_metrics(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    app, state = flip_app()
    gateway, pushes = pushgateway_app()
    config = cli_config(tmp_path, await serve(app))
    done = await podium_cli(
        "run", "p", "--config", str(config), "--pushgateway", await serve(gateway)
    )
    assert done.exit_code == 0, done.output
    assert [(p["method"], p["path"]) for p in pushes] == [("PUT", "/metrics/job/podium/pipeline/p")]
    families, samples = parse(pushes[0]["body"])
    assert families == FAMILIES
    assert samples[(f"{DURATION}_count", label(connector="api"))] == state["requests"] == 3
    assert (LAST_SUCCESS, label(pipeline="p")) in samples


@pytest.mark.parametrize("gateway", ["answers 500", "refuses", "hangs"])
async def test_a_failed_push_is_one_line_and_exit_1_after_the_run_is_recorded(
    serve: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateway: str
) -> None:
    app, _state = flip_app()
    config = cli_config(tmp_path, await serve(app))
    hang = asyncio.Event()
    pushes: list[dict[str, Any]] = []
    if gateway == "refuses":
        url, reason = f"http://127.0.0.1:{free_port()}", "connection refused"
    else:
        receiver, pushes = pushgateway_app(500, hang if gateway == "hangs" else None)
        url = await serve(receiver)
        reason = "it answered HTTP 500" if gateway == "answers 500" else "no answer within 0.5s"
    monkeypatch.setattr(_publish, "PUSH_TIMEOUT", 0.5)
    try:
        done = await podium_cli("run", "p", "--config", str(config), "--pushgateway", url)
    finally:
        hang.set()
    assert done.exit_code == 1, done.output
    # the run logs its progress on stderr (INFO); the failure is one line of its own
    lines = [line for line in done.stderr.splitlines() if line.startswith("podium:")]
    assert len(lines) == 1, done.stderr
    pushing = f"podium: error: could not push the metrics to the Pushgateway at {url}: "
    assert lines[0].startswith(pushing), lines
    assert reason in lines[0] and "is recorded: podium show" in lines[0]
    assert "Traceback" not in done.output
    assert len(pushes) == (0 if gateway == "refuses" else 1)
    assert [r["status"] for r in await recorded_runs(config)] == ["ok"]


async def test_metrics_options_are_checked_before_the_run(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    app, state = flip_app()
    config = cli_config(tmp_path, await serve(app))
    missing = tmp_path / "nowhere" / "p.prom"
    done = await podium_cli("run", "p", "--config", str(config), "--metrics", str(missing))
    assert done.exit_code == 2 and "does not exist" in done.stderr
    done = await podium_cli("run", "p", "--config", str(config), "--pushgateway", "http://:x")
    assert done.exit_code == 2 and "--pushgateway expects" in done.stderr
    assert state["requests"] == 0


def test_import_help_and_validate_do_not_load_prometheus_client(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.toml",
        database=f"sqlite:///{tmp_path / 'v.db'}",
        base_url="http://127.0.0.1:9",
        pipelines=pipeline_toml("p", '{ interval = "1h" }'),
    )
    code = f"""
import sys
import podium
assert "prometheus_client" not in sys.modules, "import podium"
from typer.testing import CliRunner
from podium.cli import app
for args in (["--help"], ["run", "--help"], ["validate", "--config", {str(config)!r}]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
    assert "prometheus_client" not in sys.modules, args
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
