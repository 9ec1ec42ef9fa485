"""The daemon on one node: fires on time, stops gracefully, reloads, reports its health."""

from __future__ import annotations

import itertools
import signal
import statistics
from collections.abc import Callable
from pathlib import Path

import aiohttp
import anyio
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs import Daemon

from .daemon_helpers import (
    PODIUM,
    percentile,
    pipeline_toml,
    read_runs,
    sql,
    start_daemon,
    wait_for,
    write_config,
)
from .servers import items_app

pytestmark = pytest.mark.anyio


async def test_interval_and_cron_fire_on_time(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str
) -> None:
    app, _seen = items_app(pages=1)
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url=await serve(app),
        pipelines=pipeline_toml("every", '{ interval = "500ms" }')
        + pipeline_toml("cron", '{ cron = "* * * * * *" }'),
    )
    daemon = Daemon(config, node_id="t1")
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        await anyio.sleep(4.2)
        daemon.stop()
    every, cron = read_runs(sqlite_url, "every"), read_runs(sqlite_url, "cron")
    assert 7 <= len(every) <= 9 and 3 <= len(cron) <= 5, (len(every), len(cron))
    assert all(r.status == "ok" and r.stored == 20 for r in every + cron)
    steps = {
        round((b.scheduled_for - a.scheduled_for).total_seconds(), 3)  # type: ignore[operator]
        for a, b in itertools.pairwise(every)
    }
    assert steps == {0.5}
    assert all(r.scheduled_for.microsecond == 0 for r in cron)  # type: ignore[union-attr]
    late = [r.lateness for r in every + cron]
    assert min(late) >= 0
    assert statistics.median(late) < 0.05 and percentile(late, 0.99) < 0.25, late


async def test_sigterm_lets_a_run_finish_within_grace(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str
) -> None:
    app, _seen = items_app(pages=6, delay=0.2)  # one run ≈ 1.2 s
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url=await serve(app),
        pipelines=pipeline_toml("slow", '{ interval = "1s" }', pages=6),
        scheduler='grace = "10s"',
    )
    daemon = await start_daemon(config, "grace")
    try:
        await daemon.wait_ready()
        await wait_for(lambda: read_runs(sqlite_url), 10, what="a run to start")
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit(15) == 0, daemon.output()
    finally:
        await daemon.aclose()
    runs = read_runs(sqlite_url)
    assert [r.status for r in runs] == ["ok"] * len(runs), daemon.output()
    assert runs[-1].stored == 120
    assert daemon.info() is None  # the runtime file is removed on exit


async def test_sigterm_past_grace_marks_interrupted_and_keeps_whole_batches(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str
) -> None:
    app, _seen = items_app(pages=30, delay=0.1)  # one run ≈ 3 s, a batch every 0.1 s
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url=await serve(app),
        pipelines=pipeline_toml("slow", '{ interval = "1s" }', pages=30),
        scheduler='grace = "0.5s"',
    )
    daemon = await start_daemon(config, "cut")
    try:
        await daemon.wait_ready()
        await wait_for(lambda: read_runs(sqlite_url), 10, what="a run to start")
        await anyio.sleep(0.6)
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit(10) == 0, daemon.output()
    finally:
        await daemon.aclose()
    (run,) = read_runs(sqlite_url)
    assert run.status == "interrupted", daemon.output()
    assert run.finished_at is not None
    rows = sql(sqlite_url, "SELECT count(*) FROM items_slow")[0][0]
    assert 0 < rows < 600
    assert rows == run.stored and rows % 20 == 0  # whole batches only, all recorded


async def test_second_signal_exits_at_once(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str
) -> None:
    app, _seen = items_app(pages=50, delay=0.2)
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url=await serve(app),
        pipelines=pipeline_toml("slow", '{ interval = "1s" }', pages=50),
        scheduler='grace = "60s"',
    )
    daemon = await start_daemon(config, "twice")
    try:
        await daemon.wait_ready()
        await wait_for(lambda: read_runs(sqlite_url), 10, what="a run to start")
        daemon.send(signal.SIGTERM)
        await anyio.sleep(0.3)
        daemon.send(signal.SIGTERM)
        with anyio.fail_after(5):
            assert await daemon.process.wait() == 130
    finally:
        await daemon.aclose()
    assert [r.status for r in read_runs(sqlite_url)] == ["interrupted"]


async def test_sighup_adds_changes_removes_and_rejects_broken_config(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str
) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    path = tmp_path / "config.toml"

    def configure(pipelines: str) -> None:
        write_config(path, database=sqlite_url, base_url=base, pipelines=pipelines)

    configure(
        pipeline_toml("gone", '{ interval = "300ms" }')
        + pipeline_toml("kept", '{ interval = "1s" }')
    )
    daemon = await start_daemon(path, "hup")
    try:
        await daemon.wait_ready()
        await wait_for(lambda: len(read_runs(sqlite_url, "kept")) >= 2, 10, what="kept to fire")
        configure(
            pipeline_toml("kept", '{ interval = "250ms" }')
            + pipeline_toml("new", '{ interval = "300ms" }')
        )
        # `podium reload` finds the daemon by its runtime file and sends SIGHUP.
        result = await anyio.run_process([PODIUM, "reload", "--config", str(path)], check=False)
        assert result.returncode == 0, result.stderr
        assert b"reload sent to node hup" in result.stdout
        await wait_for(lambda: "reloaded" in daemon.output(), 5, what="the reload")
        reloaded = len(read_runs(sqlite_url, "gone"))
        await anyio.sleep(2)
        assert len(read_runs(sqlite_url, "gone")) <= reloaded + 1  # removed: no more fires
        assert len(read_runs(sqlite_url, "new")) >= 4  # added
        kept = read_runs(sqlite_url, "kept")
        gaps = [
            (b.scheduled_for - a.scheduled_for).total_seconds() for a, b in itertools.pairwise(kept)
        ]  # type: ignore[operator]
        assert gaps[-1] == pytest.approx(0.25, abs=0.01)  # changed: the new interval

        path.write_text("this is [not toml", encoding="utf-8")
        daemon.send(signal.SIGHUP)
        await wait_for(lambda: "reload rejected" in daemon.output(), 5, what="the rejection")
        before = len(read_runs(sqlite_url, "new"))
        await anyio.sleep(1.5)
        assert len(read_runs(sqlite_url, "new")) >= before + 3  # the old schedules keep firing
        rejected = [line for line in daemon.output().splitlines() if "reload rejected" in line]
        assert len(rejected) == 1 and "invalid TOML" in rejected[0]
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit(10) == 0
    finally:
        await daemon.aclose()


async def test_endpoint_health_status_metrics_while_running(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str
) -> None:
    app, _seen = items_app(pages=4, delay=0.25)  # one run ≈ 1 s
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url=await serve(app),
        pipelines=pipeline_toml("slow", '{ interval = "500ms" }', pages=4)
        + pipeline_toml("idle", '{ interval = "1h", paused = true }'),
    )
    daemon = Daemon(config, node_id="web")
    async with anyio.create_task_group() as tg, aiohttp.ClientSession() as http:
        await tg.start(daemon.run)
        base = f"http://127.0.0.1:{daemon.port}"
        async with http.get(f"{base}/healthz") as response:
            assert response.status == 200 and await response.text() == "ok\n"

        async def status() -> dict:
            async with http.get(f"{base}/status") as response:
                return await response.json()

        doc = await status()
        assert doc["node_id"] == "web" and doc["mode"] == "memory"
        by_name = {p["name"]: p for p in doc["pipelines"]}
        assert by_name["idle"]["paused"] and by_name["slow"]["next_fire"]
        seen_running = []
        with anyio.fail_after(5):
            while not seen_running:
                seen_running = [p for p in (await status())["pipelines"] if p["running"]]
                await anyio.sleep(0.05)
        await wait_for(
            lambda: any(r.status == "ok" for r in read_runs(sqlite_url)), 5, what="a finished run"
        )
        assert seen_running[0]["name"] == "slow"
        last = (await status())["pipelines"][0]["last_run"]
        assert last["status"] in ("ok", "running") and last["trigger"] == "daemon:web"

        async with http.get(f"{base}/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples[("podium_runs_total", (("pipeline", "slow"), ("status", "ok")))] >= 1
        assert samples[("podium_requests_total", (("code", "200"), ("connector", "api")))] >= 4
        assert samples[("podium_records_stored_total", (("pipeline", "slow"),))] >= 80
        assert samples[("podium_runs_running", (("pipeline", "slow"),))] in (0, 1)
        assert samples[("podium_run_duration_seconds_count", (("pipeline", "slow"),))] >= 1
        assert ("podium_retries_total", (("connector", "api"),)) in samples
        # overlap = skip: fires every 0.5 s while a run takes ~1 s
        assert (
            samples[("podium_fires_skipped_total", (("pipeline", "slow"), ("reason", "overlap")))]
            >= 1
        )

        result = await anyio.run_process(
            [PODIUM, "status", "--config", str(config), "--json"], check=False
        )
        assert result.returncode == 0, result.stderr
        assert orjson.loads(result.stdout)[0]["node_id"] == "web"
        table = await anyio.run_process([PODIUM, "status", "--config", str(config)], check=False)
        assert b"slow" in table.stdout and b"idle" in table.stdout
        daemon.stop()
