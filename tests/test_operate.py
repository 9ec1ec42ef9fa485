"""Operating the daemon: trigger (and --wait), idempotent triggers, pause across a
restart, backfill, cancel — and an endpoint no one else can drive (issue 11)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import anyio
import orjson
import pytest

from .daemon_helpers import (
    daemon_config,
    pipeline_toml,
    podium_cli,
    read_runs,
    start_daemon,
    wait_for,
)
from .servers import items_app, slow_app

pytestmark = pytest.mark.anyio
TOKEN = "operate-test-token-7c1d9e5a"


cli = podium_cli


def _config(tmp_path: Path, base_url: str, *, scheduler: str = "", pipelines: str = "") -> Path:
    return daemon_config(tmp_path, base_url, scheduler=scheduler, pipelines=pipelines)


async def test_trigger_waits_for_the_run_and_a_key_starts_one_run(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, seen = items_app(pages=3)
    base = await serve(app)
    pipelines = pipeline_toml("ok_once", '{ interval = "1h" }', pages=3)
    pipelines += pipeline_toml("broken", '{ interval = "1h" }', pages=5)  # pages 3, 4: 404
    config = _config(tmp_path, base, pipelines=pipelines)
    daemon = await start_daemon(config, "node-t")
    try:
        await daemon.wait_ready()
        code, out, err = await cli("trigger", "ok_once", "--wait", "--config", str(config))
        assert code == 0, err
        assert "started on node node-t" in err and "ok_once · run" in out
        code, _, err = await cli("trigger", "broken", "--wait", "--config", str(config))
        assert code == 1, err
        args = ("trigger", "ok_once", "--idempotency-key", "deploy-42", "--config", str(config))
        first, second = await cli(*args), await cli(*args)
        assert first[0] == 0 and second[0] == 0
        run_id = first[1].split()[1]
        assert f"already started run {run_id}" in second[1]
        url = f"sqlite:///{tmp_path / 'podium.db'}"
        await wait_for(
            lambda: all(r.status != "running" for r in read_runs(url, "ok_once")),
            20,
            what="the runs to end",
        )
        runs = read_runs(url, "ok_once")
        assert len(runs) == 2 and {r.trigger for r in runs} == {"manual"}
        unknown = await cli("trigger", "nope", "--config", str(config))
        assert unknown[0] == 2 and "no pipeline 'nope'" in unknown[2]
        assert seen.requests == 3 + 5 + 3
    finally:
        await daemon.aclose()


async def test_pause_survives_a_restart_and_backfill_runs_each_missing_slot(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    pipelines = pipeline_toml("ticks", '{ interval = "1s" }')
    pipelines += pipeline_toml("hourly", '{ cron = "0 * * * *" }')
    config = _config(tmp_path, base, pipelines=pipelines)
    url = f"sqlite:///{tmp_path / 'podium.db'}"
    args = ("--config", str(config))
    assert (await cli("pause", "ticks", "--reason", "incident 7", *args))[0] == 0
    daemon = await start_daemon(config, "node-p")
    try:
        await daemon.wait_ready()
        await anyio.sleep(3)
        assert read_runs(url, "ticks") == []  # paused before the daemon started
    finally:
        await daemon.aclose()
    daemon = await start_daemon(config, "node-p")  # a restart: still paused
    try:
        await daemon.wait_ready()
        await anyio.sleep(2.5)
        assert read_runs(url, "ticks") == []
        code, out, _ = await cli("status", "--json", *args)
        [doc] = orjson.loads(out)
        ticks = next(p for p in doc["pipelines"] if p["name"] == "ticks")
        assert ticks["paused"] and ticks["paused_reason"] == "incident 7"
        assert (await cli("resume", "ticks", *args))[1].strip() == "resumed ticks"
        await wait_for(lambda: len(read_runs(url, "ticks")) >= 2, 10, what="ticks to fire")

        # Backfill: 5 slots first, then 24 over them — 19 more runs, each slot once.
        day = datetime(2026, 11, 1, tzinfo=UTC)
        first = await cli("backfill", "hourly", "--from", day.isoformat(),
                          "--to", (day + timedelta(hours=5)).isoformat(), *args)  # fmt: skip
        assert first[0] == 0 and "5 queued" in first[1], first
        said = " ".join(first[1].split())  # wrapped to the terminal's width
        assert "run the same backfill again (slots already run are skipped)" in said
        await wait_for(lambda: len(read_runs(url, "hourly")) == 5, 20, what="5 backfill runs")
        code, out, err = await cli(
            "backfill", "hourly", "--from", "2026-11-01T00:00Z", "--to", "2026-11-02T00:00Z",
            "--concurrency", "3", "--json", *args,
        )  # fmt: skip
        assert code == 0, err
        answer = orjson.loads(out)
        assert (answer["slots"], answer["already_run"], answer["queued"]) == (24, 5, 19)
        await wait_for(
            lambda: len([r for r in read_runs(url, "hourly") if r.status != "running"]) == 24,
            30,
            what="24 backfill runs",
        )
        runs = read_runs(url, "hourly")
        assert [r.scheduled_for for r in runs] == [day + timedelta(hours=h) for h in range(24)]
        assert {r.trigger for r in runs} == {"backfill"} and {r.status for r in runs} == {"ok"}
        bad = await cli("backfill", "ticks", "--from", "2026-11-01T00:00Z", "--to",
                        "2026-12-01T00:00Z", *args)  # fmt: skip
        assert bad[0] == 2 and "more than 10000 slots" in bad[2]
    finally:
        await daemon.aclose()


async def test_cancel_stops_a_run_on_the_daemon(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, _seen = slow_app(30.0)
    base = await serve(app)
    slow = """
[pipelines.slow]
[[pipelines.slow.stages]]
name = "wait"
kind = "fetch"
connector = "api"
path = "/slow/1"
"""
    config = _config(tmp_path, base, pipelines=slow)
    url = f"sqlite:///{tmp_path / 'podium.db'}"
    daemon = await start_daemon(config, "node-c")
    try:
        await daemon.wait_ready()
        code, out, err = await cli("trigger", "slow", "--config", str(config))
        assert code == 0, err
        run_id = out.split()[1]
        started = anyio.current_time()
        code, out, err = await cli("cancel", run_id[:10], "--config", str(config))
        assert code == 0 and "cancel requested" in out, err
        await wait_for(
            lambda: read_runs(url, "slow")[0].status == "cancelled", 15, what="the cancel"
        )
        assert anyio.current_time() - started < 10
        again = await cli("cancel", run_id, "--config", str(config))
        assert again[0] == 1 and "not running (it ended cancelled)" in again[2]
    finally:
        await daemon.aclose()


# -- access ----------------------------------------------------------------------------------
WRITES = [
    "/reload",
    "/api/pipelines/ticks/trigger",
    "/api/pipelines/ticks/backfill",
    "/api/pipelines/ticks/pause",
    "/api/pipelines/ticks/resume",
    "/api/runs/abc/cancel",
    "/api/alerts/ticks/mute",
    "/api/alerts/ticks/unmute",
]


async def test_every_write_needs_the_token_and_the_right_host_and_origin(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    config = _config(
        tmp_path,
        base,
        scheduler='token = "${PODIUM_TOKEN}"\nread_token = "${PODIUM_READ_TOKEN}"\n',
        pipelines=pipeline_toml("ticks", '{ interval = "1h" }'),
    )
    read_token = "operate-read-token-0b3f2a"
    os.environ["PODIUM_TOKEN"], os.environ["PODIUM_READ_TOKEN"] = TOKEN, read_token
    try:
        daemon = await start_daemon(config, "node-a")
    finally:
        del os.environ["PODIUM_TOKEN"], os.environ["PODIUM_READ_TOKEN"]
    try:
        info = await daemon.wait_ready()
        root = f"http://127.0.0.1:{info['port']}"
        assert "token" not in info  # a configured token is never written to the runtime file
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as http:
            for path in WRITES:
                async with http.post(root + path, json={}) as resp:
                    assert resp.status == 401, path
                async with http.post(
                    root + path, json={}, headers={**bearer, "Origin": "http://evil.example"}
                ) as resp:
                    assert resp.status == 403, path
                async with http.post(
                    root + path, json={}, headers={**bearer, "Host": "evil.example"}
                ) as resp:
                    assert resp.status == 403, path
                async with http.post(
                    root + path,
                    json={},
                    headers={"Authorization": f"Bearer {read_token}"},
                ) as resp:
                    assert resp.status == 401, path  # a read token does not write
            async with http.post(
                root + "/api/pipelines/ticks/pause", json={}, headers=bearer
            ) as resp:
                assert resp.status == 200 and (await resp.json())["paused"]
            # Reads need a token too here (a read token is set); /healthz never does.
            async with http.get(root + "/status") as resp:
                assert resp.status == 401
            async with http.get(
                root + "/status", headers={"Authorization": f"Bearer {read_token}"}
            ) as resp:
                assert resp.status == 200
            async with http.get(root + "/healthz", headers={"Host": "pod-10-0-0-7:8787"}) as resp:
                assert resp.status == 200
            # The browser's way in: a session cookie holding a hash of the token.
            async with http.post(root + "/login", data={"token": "wrong", "next": "/"},
                                 allow_redirects=False) as resp:  # fmt: skip
                assert resp.status == 303 and "failed" in resp.headers["Location"]
            async with http.post(root + "/login", data={"token": TOKEN, "next": "//evil"},
                                 allow_redirects=False) as resp:  # fmt: skip
                assert resp.status == 303 and resp.headers["Location"] == "/"
                cookie = resp.cookies["podium_session"]
                assert TOKEN not in cookie.value and cookie["httponly"]
        log = daemon.output()
        assert TOKEN not in log and read_token not in log
    finally:
        await daemon.aclose()


async def test_without_a_token_the_cli_writes_through_the_runtime_file_only(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, _seen = items_app(pages=1)
    config = _config(
        tmp_path, await serve(app), pipelines=pipeline_toml("ticks", '{ interval = "1h" }')
    )
    daemon = await start_daemon(config, "node-e")
    try:
        info = await daemon.wait_ready()
        runtime = tmp_path / ".podium" / "daemon-node-e.json"
        assert stat.S_IMODE(runtime.stat().st_mode) == 0o600
        assert len(info["token"]) >= 32
        url = f"http://127.0.0.1:{info['port']}/reload"
        async with aiohttp.ClientSession() as http, http.post(url) as resp:
            assert resp.status == 401
        code, out, err = await cli("reload", "--config", str(config))
        assert code == 0 and "reloaded node node-e" in out, err
    finally:
        await daemon.aclose()


async def test_a_network_bind_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    config = _config(tmp_path, "http://127.0.0.1:9", scheduler='host = "0.0.0.0"\n',
                     pipelines=pipeline_toml("ticks", '{ interval = "1h" }'))  # fmt: skip
    for command in ("daemon", "validate"):
        code, _, err = await cli(command, "--config", str(config))
        assert code == 2, (command, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "scheduler.host" in lines[0] and "token" in lines[0]
