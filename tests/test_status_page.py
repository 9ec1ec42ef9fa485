"""The status page over HTTP, against a real daemon: every page as HTML and JSON, what
comes from data escaped, no token shown, buttons only for a writer, reads behind a
session when a read token is set, and the pieces (state, uptime, plots) on their own."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from podium.jobs._slots import next_slot
from podium.jobs.web import _charts as charts
from podium.jobs.web import _health as health
from podium.orchestrator.alerts import CheckSummary, summarise
from podium.pipeline import Schedule

from .alert_servers import WebhookReceiver
from .daemon_helpers import read_runs, start_daemon, wait_for
from .servers import items_app
from .status_helpers import BEARER, TOKEN, get_json, start_with_token, status_config

pytestmark = pytest.mark.anyio
HOSTILE = '<script>alert("x")</script>'


async def fetch(root: str, path: str, **headers: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(root + path, headers=headers, allow_redirects=False) as resp,
    ):
        return resp.status, resp.headers.get("Location", ""), await resp.text()


async def test_every_page_as_html_and_json(serve: Callable[..., object], tmp_path: Path) -> None:
    app, _seen = items_app(pages=3)
    receiver = WebhookReceiver()
    config = status_config(
        tmp_path,
        await serve(app),
        await serve(receiver.app()),
        extra=f"""
[pipelines.odd]
description = '{HOSTILE}'
[[pipelines.odd.stages]]
name = "items"
kind = "fetch"
connector = "api"
path = "/items/0"
records = "items"
""",
    )
    url = f"sqlite:///{tmp_path / 'podium.db'}"
    daemon = await start_with_token(config, "node-s")
    try:
        info = await daemon.wait_ready()
        root = f"http://127.0.0.1:{info['port']}"
        await wait_for(
            lambda: any(r.status == "failed" for r in read_runs(url, "broken")),
            20,
            what="a failed run",
        )
        html = {"Accept": "text/html"}
        overview = await get_json(root, "/.json")
        assert overview == {**overview, "node": "node-s", "open_incidents": 1}
        assert [p["name"] for p in overview["pipelines"]] == ["orders", "broken", "odd"]
        broken = overview["pipelines"][1]
        assert broken["state"] in ("failing", "running") and broken["open_incidents"] == 1
        day = broken["uptime"]["24h"]
        assert day["basis"] == "runs" and day["total"] >= 1 and day["ratio"] == 0.0
        assert overview["nodes"][0]["runs_24h"] >= day["total"]
        assert broken["next_fire"] is not None and broken["schedule"] == "every 0:00:02"
        [monitor] = overview["monitors"]
        assert monitor["name"] == "api_up" and monitor["uptime"]["24h"]["basis"] == "checks"
        assert [n["node_id"] for n in overview["nodes"]] == ["node-s"]
        # Accept: application/json answers the same document as the suffix.
        same = await get_json(root, "/", Accept="application/json")
        assert same["pipelines"][0]["name"] == "orders"

        failed = next(r for r in read_runs(url, "broken") if r.status == "failed")
        run = await get_json(root, f"/runs/{failed.id[:10]}.json")
        assert run["run"]["id"] == failed.id and run["run"]["status"] == "failed"
        assert run["causes"][0]["cause"] == "HTTP 404" and run["causes"][0]["count"] == 2
        assert {d["item"] for d in run["dead_letters"]} == {"#3", "#4"}
        assert [s["name"] for s in run["stages"]] == ["items", "save"]

        page = await get_json(root, "/pipelines/api_up.json")
        [check] = page["checks"]
        assert check["check"] == "up" and check["state"] == "passing"
        assert len(check["hours"]) == 48 and check["hours"][-1]["runs"] >= 1
        assert check["hours"][-1]["p50_ms"] is not None

        alerts = await get_json(root, "/alerts.json")
        assert [i["label"] for i in alerts["open"]] == ["run broken"]
        assert [w["name"] for w in alerts["maintenance"]] == ["nightly"]
        assert alerts["alerts"] == [{"name": "ops", "problem": None, "muted": False}]

        for path in ("/", "/pipelines/broken", "/pipelines/odd", f"/runs/{failed.id}", "/alerts"):
            status, _, body = await fetch(root, path, **html)
            assert status == 200, (path, body)
            assert TOKEN not in body
            assert "<script>alert" not in body  # data is escaped, always
        status, _, body = await fetch(root, "/pipelines/odd", **html)
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body
        assert "Run now" not in body and "Sign in</a> with the write token" in body
        status, _, body = await fetch(root, "/pipelines/broken", **html, **BEARER)
        assert 'action="/api/pipelines/broken/trigger"' in body and "Backfill" in body
        status, _, body = await fetch(root, f"/runs/{failed.id}", **html)
        assert "HTTP 404" in body and "Failures by cause" in body

        # Unknown names: 404 as a page and as JSON.
        assert (await fetch(root, "/pipelines/nope", **html))[0] == 404
        status, _, body = await fetch(root, "/runs/ffff.json")
        assert status == 404 and "no run with id" in body
        # A page's form that cannot be done comes back to the page with the reason.
        async with aiohttp.ClientSession() as http, http.post(
            root + "/api/pipelines/odd/backfill",
            data={"from": "2026-11-01T00:00", "to": "2026-11-02T00:00", "next": "/pipelines/odd"},
            headers=BEARER, allow_redirects=False,
        ) as resp:  # fmt: skip
            assert resp.status == 303
            location = resp.headers["Location"]
        assert location.startswith("/pipelines/odd?error=")
        status, _, body = await fetch(root, location, **html)
        assert "has no schedule: a backfill runs its slots" in body
    finally:
        await daemon.aclose()


async def test_with_a_read_token_the_pages_need_a_session(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, _seen = items_app(pages=3)
    read_token = "status-read-token-91c3d0aa"
    config = status_config(
        tmp_path,
        await serve(app),
        await serve(WebhookReceiver().app()),
        scheduler='read_token = "${PODIUM_READ_TOKEN}"\n',
    )
    os.environ["PODIUM_READ_TOKEN"] = read_token
    try:
        daemon = await start_with_token(config, "node-r")
    finally:
        del os.environ["PODIUM_READ_TOKEN"]
    try:
        info = await daemon.wait_ready()
        root = f"http://127.0.0.1:{info['port']}"
        status, location, _ = await fetch(root, "/pipelines/orders", Accept="text/html")
        assert status == 303 and location == "/login?next=/pipelines/orders"
        assert (await fetch(root, "/.json"))[0] == 401
        assert (await fetch(root, "/static/podium.css"))[0] == 200  # the login page's style
        reader = {"Authorization": f"Bearer {read_token}", "Accept": "text/html"}
        status, _, body = await fetch(root, "/pipelines/orders", **reader)
        assert status == 200 and "Run now" not in body  # a reader sees no buttons
        assert read_token not in body and TOKEN not in body
    finally:
        await daemon.aclose()


async def test_without_a_scheduler_the_next_fire_is_computed(tmp_path: Path) -> None:
    """The page of a daemon still starting (no scheduler yet) computes it: a stand-in
    for a node whose scheduler does not hold the schedule."""
    now = datetime(2026, 12, 1, 8, 0, 30, tzinfo=UTC)
    cron = Schedule(cron="*/5 * * * *")
    assert next_slot(cron, now, None) == datetime(2026, 12, 1, 8, 5, tzinfo=UTC)
    every = Schedule(interval=timedelta(minutes=10))
    assert next_slot(every, now, None) is None  # anchored where the scheduler added it
    last = datetime(2026, 12, 1, 7, 55, tzinfo=UTC)
    assert next_slot(every, now, last) == datetime(2026, 12, 1, 8, 5, tzinfo=UTC)
    ended = Schedule(cron="*/5 * * * *", end=datetime(2026, 12, 1, 8, 1, tzinfo=UTC))
    assert next_slot(ended, now, None) is None
    fire, source = health.next_fire(cron, paused=False, scheduler={}, name="x", runs=[], now=now)
    assert (fire, source) == (datetime(2026, 12, 1, 8, 5, tzinfo=UTC), "computed")
    assert health.next_fire(cron, paused=True, scheduler={}, name="x", runs=[], now=now) == (
        None,
        None,
    )


def _check(target: str, ok: bool, runs: int, passed: int) -> CheckSummary:
    now = datetime(2026, 12, 1, 8, tzinfo=UTC)
    status = {
        "pipeline": "p", "name": "c", "target": target, "ok": ok, "since": now, "last_at": now,
        "last_run_id": "r", "last_failure_at": None, "last_failure_cause": None,
        "last_failure_run_id": None,
    }  # fmt: skip
    hours = [{"pipeline": "p", "name": "c", "hour": now, "runs": runs, "passed": passed,
              "latency": None}]  # fmt: skip
    [summary] = summarise([status], hours, now)
    return summary


def test_state_and_uptime_rules() -> None:
    ok, failed = {"status": "ok"}, {"status": "failed"}
    running, cancelled = {"status": "running"}, {"status": "cancelled"}
    assert health.state(paused=False, runs=[], checks=[]) == "idle"
    assert health.state(paused=False, runs=[cancelled, failed, ok], checks=[]) == "failing"
    assert health.state(paused=False, runs=[ok, failed], checks=[]) == "passing"
    assert health.state(paused=False, runs=[running, ok], checks=[]) == "running"
    assert health.state(paused=True, runs=[running], checks=[]) == "paused"
    records = _check("records", False, 4, 1)
    assert health.state(paused=False, runs=[ok], checks=[records]) == "failing"
    # Uptime: response checks when there are some, else runs (ok and partial are good).
    counts = {"24h": {"ok": 3, "partial": 1, "failed": 4, "cancelled": 5, "running": 1}}
    by_runs = health.uptime([records], counts)["24h"]
    assert by_runs == {"ratio": 0.5, "good": 4, "total": 8, "basis": "runs"}
    by_checks = health.uptime([_check("responses", True, 10, 9)], counts)["24h"]
    assert by_checks == {"ratio": 0.9, "good": 9, "total": 10, "basis": "checks"}
    assert health.uptime([], {})["7d"]["ratio"] is None


def test_plots_are_numbers_and_plain_labels() -> None:
    assert [charts.nice_ceiling(v) for v in (0, 0.7, 3, 20, 21, 260)] == [1, 1, 5, 20, 25, 500]
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    series = [
        {"id": f"r{i}", "status": "ok" if i % 3 else "failed",
         "started_at": start + timedelta(minutes=i), "duration_s": 0.5 * i, "stored": 20}
        for i in range(5)
    ]  # fmt: skip
    plot = charts.runs_plot(series, "duration_s", "run duration", "s")
    assert [p.status for p in plot.points] == ["failed", "ok", "ok", "failed", "ok"]
    assert plot.points[0].x == plot.left and plot.points[-1].x == plot.right
    assert plot.points[0].y == plot.bottom and plot.points[-1].y == plot.top  # 2.0 s is the top
    assert plot.points[-1].href == "/runs/r4" and plot.y_ticks[-1].label == "2s"
    assert charts.runs_plot([], "stored", "stored").empty
    hours = [{"hour": start + timedelta(hours=h), "runs": h % 2, "passed": h % 2,
              "uptime": 1.0 if h % 2 else None, "p50_ms": 10.0 if h % 2 else None,
              "p95_ms": 30.0 if h % 2 else None} for h in range(4)]  # fmt: skip
    bars = charts.uptime_bars(hours, "uptime")
    assert [b.css for b in bars.bars] == ["none", "up", "none", "up"]
    lines = charts.response_plot(hours, "response")
    assert [len(line.segments) for line in lines.lines] == [2, 2]  # gaps break the lines


async def test_a_daemon_without_token_shows_the_page_on_loopback(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    """No token configured: reads are open on loopback; the buttons need the runtime
    file's token, so the page offers to sign in instead."""
    app, _seen = items_app(pages=3)
    config = status_config(tmp_path, await serve(app), await serve(WebhookReceiver().app()))
    config.write_text(config.read_text().replace('token = "${PODIUM_TOKEN}"\n', ""))
    daemon = await start_daemon(config, "node-o")
    try:
        info = await daemon.wait_ready()
        root = f"http://127.0.0.1:{info['port']}"
        status, _, body = await fetch(root, "/", Accept="text/html")
        assert status == 200 and "node-o" in body and info["token"] not in body
    finally:
        await daemon.aclose()
