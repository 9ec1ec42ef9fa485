"""The daemon on one node: fires on time, stops gracefully, reloads, reports its health."""

from __future__ import annotations

import contextlib
import io
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
import yarl
from aiohttp import web
from loguru import logger
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client.parser import text_string_to_metric_families

from podium.jobs import Daemon
from podium.jobs import _control as jobs_control
from podium.jobs import _pool as jobs_pool
from podium.jobs._control import hold_node
from podium.pipeline import HTTPStatusError, NodeIdInUse, PodiumError

from .daemon_helpers import (
    PODIUM,
    Run,
    free_port,
    pipeline_toml,
    podium,
    read_runs,
    sql,
    start_daemon,
    steps,
    wait_for,
    write_config,
)
from .servers import items_app

pytestmark = pytest.mark.anyio


async def test_interval_and_cron_fire_at_their_nominal_times(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str
) -> None:
    # Correctness only: which fires happen and what they are called. How late they start
    # is a speed target measured by bench/daemon_lateness.py, not asserted here.
    app, _seen = items_app(pages=1)
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url=await serve(app),
        # parallel: a run slowed by a loaded machine never makes the next fire a skip
        pipelines=pipeline_toml("every", '{ interval = "1s", overlap = "parallel" }')
        + pipeline_toml("cron", '{ cron = "* * * * * *", overlap = "parallel" }'),
    )
    daemon = Daemon(config, node_id="t1")
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        await wait_for(
            lambda: (
                len(read_runs(sqlite_url, "every")) >= 4 and len(read_runs(sqlite_url, "cron")) >= 4
            ),
            30,
            what="4 fires of each schedule",
        )
        daemon.stop()
    every, cron = read_runs(sqlite_url, "every"), read_runs(sqlite_url, "cron")
    assert all(r.status == "ok" and r.stored == 20 for r in every + cron), every + cron
    # interval: exact steps from one interval after it was added (never at once), no gaps
    assert every[0].scheduled_for >= daemon.started_at + timedelta(seconds=1)  # type: ignore[operator]
    assert steps(every) == [timedelta(seconds=1)] * (len(every) - 1), every
    # cron: whole seconds, every second, none twice, none missed
    assert all(r.scheduled_for.microsecond == 0 for r in cron), cron  # type: ignore[union-attr]
    assert steps(cron) == [timedelta(seconds=1)] * (len(cron) - 1), cron
    # never early; "late" only by a bound no loaded CI machine comes near
    assert all(0 <= r.lateness < 10 for r in every + cron), [r.lateness for r in every + cron]


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
        await wait_for(
            lambda: (sql(sqlite_url, "SELECT count(*) FROM items_slow") or [(0,)])[0][0],
            15,
            what="a run to store its first batch",
        )
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


async def test_reload_adds_changes_removes_and_rejects_broken_config(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str
) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    path = tmp_path / "config.toml"

    def configure(pipelines: str) -> None:
        write_config(path, database=sqlite_url, base_url=base, pipelines=pipelines)

    def every(interval: str) -> str:
        return f'{{ interval = "{interval}", overlap = "parallel" }}'

    configure(pipeline_toml("gone", every("300ms")) + pipeline_toml("kept", every("1s")))
    daemon = await start_daemon(path, "hup")
    try:
        await daemon.wait_ready()
        await wait_for(lambda: len(read_runs(sqlite_url, "kept")) >= 2, 15, what="kept to fire")
        configure(pipeline_toml("kept", every("600ms")) + pipeline_toml("new", every("700ms")))
        # `podium reload` POSTs /reload to the verified daemon and returns once it is done.
        code, out, err = await podium("reload", "--config", str(path))
        reloaded_at = datetime.now(UTC)
        assert code == 0, err
        assert f"reloaded node hup (pid {daemon.pid})" in out

        def after(name: str) -> list[Run]:
            return [r for r in read_runs(sqlite_url, name) if r.scheduled_for > reloaded_at]  # type: ignore[operator]

        await wait_for(
            lambda: len(after("kept")) >= 4 and len(read_runs(sqlite_url, "new")) >= 4,
            20,
            what="the reloaded schedules to fire",
        )
        assert after("gone") == []  # removed: no fire after the reload
        assert steps(after("kept")) == [timedelta(milliseconds=600)] * (len(after("kept")) - 1)
        new = read_runs(sqlite_url, "new")  # added
        assert steps(new) == [timedelta(milliseconds=700)] * (len(new) - 1)

        path.write_text("this is [not toml", encoding="utf-8")
        daemon.send(signal.SIGHUP)  # the signal still works, for `kill -HUP`
        await wait_for(lambda: "reload rejected" in daemon.output(), 10, what="the rejection")
        code, out, err = await podium("reload", "--config", str(path))
        assert code == 2 and out == "", (out, err)  # the CLI reads the same broken file
        assert "invalid TOML" in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        before = len(read_runs(sqlite_url, "new"))
        await wait_for(
            lambda: len(read_runs(sqlite_url, "new")) >= before + 3,
            20,
            what="the old schedules to keep firing",
        )
        new = read_runs(sqlite_url, "new")  # no fire lost or doubled by the rejections
        assert steps(new) == [timedelta(milliseconds=700)] * (len(new) - 1)
        rejected = [line for line in daemon.output().splitlines() if "reload rejected" in line]
        # SIGHUP's; `podium reload` refused the broken file before asking the daemon.
        assert len(rejected) == 1 and all("invalid TOML" in line for line in rejected)
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit(15) == 0
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
        with anyio.fail_after(15):
            while not seen_running:
                seen_running = [p for p in (await status())["pipelines"] if p["running"]]
                await anyio.sleep(0.05)
        await wait_for(
            lambda: any(r.status == "ok" for r in read_runs(sqlite_url)), 15, what="a finished run"
        )
        assert seen_running[0]["name"] == "slow"
        last = (await status())["pipelines"][0]["last_run"]
        assert last["status"] in ("ok", "running") and last["trigger"] == "schedule"
        assert last["node"] == "web"

        async with http.get(f"{base}/metrics") as response:
            # prometheus_client's own exposition format and content type
            assert response.headers["Content-Type"].startswith("text/plain; version=")
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


def write_stale_runtime(config: Path, node_id: str, pid: int, port: int) -> Path:
    """What ``kill -9`` leaves behind: a runtime file naming a pid and port now reused."""
    path = config.parent / ".podium" / f"daemon-{node_id}.json"
    path.parent.mkdir(exist_ok=True)
    info = {"pid": pid, "node_id": node_id, "instance": "0123456789abcdef"}
    path.write_bytes(orjson.dumps({**info, "host": "127.0.0.1", "port": port}))
    return path


@pytest.mark.parametrize("endpoint", ["refused", "not a daemon", "another instance"])
async def test_reload_and_status_never_act_on_a_stale_runtime_file(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str, endpoint: str
) -> None:
    posts: list[str] = []

    async def other_status(_request: web.Request) -> web.Response:
        # A newer process on the reused port, answering as the same node id.
        return web.json_response({"node_id": "ghost", "instance": "another-life", "pid": 1})

    async def other_reload(request: web.Request) -> web.Response:
        posts.append(request.path_qs)
        return web.json_response({"reloaded": True})

    if endpoint == "refused":
        port = free_port()
    else:
        app = items_app(pages=1)[0] if endpoint == "not a daemon" else web.Application()
        if endpoint == "another instance":
            app.router.add_get("/status", other_status)
            app.router.add_post("/reload", other_reload)
        port = int(str(await serve(app)).rsplit(":", 1)[1])
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url="http://127.0.0.1:9",
        pipelines=pipeline_toml("p", '{ interval = "1h" }'),
    )
    # The stale file names a live process that is not a daemon. SIGHUP would end it.
    unrelated = await anyio.open_process(["sleep", "60"])
    try:
        stale = write_stale_runtime(config, "ghost", unrelated.pid, port)
        code, out, err = await podium("reload", "--config", str(config), "--node-id", "ghost")
        assert code == 1 and out == "", (out, err)
        assert err.startswith("podium: error: node 'ghost' is not running"), err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert not stale.exists()  # its endpoint did not answer as that daemon: removed
        assert posts == []  # nothing else was asked to reload either

        write_stale_runtime(config, "ghost", unrelated.pid, port)
        code, out, err = await podium("status", "--config", str(config))
        assert code == 1 and "no daemon is running" in err and "Traceback" not in err, err

        write_stale_runtime(config, "ghost", unrelated.pid, port)
        code, out, err = await podium("reload", "--config", str(config))
        assert code == 1 and "no daemon is running" in err, err
        with anyio.move_on_after(0.5):
            await unrelated.wait()
        assert unrelated.returncode is None  # never signalled
        os.kill(unrelated.pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            unrelated.kill()
        await unrelated.aclose()


async def test_a_second_daemon_with_the_same_node_id_refuses_to_start(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str
) -> None:
    app, _seen = items_app(pages=6, delay=0.3)  # one run ≈ 1.8 s
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url=await serve(app),
        pipelines=pipeline_toml("slow", '{ interval = "1s" }', pages=6),
    )
    first = await start_daemon(config, "shared")
    second = None
    try:
        info = await first.wait_ready()
        await wait_for(
            lambda: [r for r in read_runs(sqlite_url) if r.status == "running"],
            15,
            what="a run of the first daemon",
        )
        second = await start_daemon(config, "shared")
        assert await second.wait_exit(30) == 2, second.output()
        lines = second.output().strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in lines[0], lines
        assert f"node '{first.node_id}' is already running (pid {first.pid})" in lines[0]
        assert "--node-id" in lines[0]
        assert first.info() == info  # its runtime file was left alone
        assert "interrupted" not in {r.status for r in read_runs(sqlite_url)}
        code, out, err = await podium("reload", "--config", str(config))
        assert code == 0 and f"(pid {first.pid})" in out, err  # still reachable, still itself
        first.send(signal.SIGTERM)
        assert await first.wait_exit(15) == 0, first.output()
    finally:
        await first.aclose()
        if second is not None:
            await second.aclose()
    runs = read_runs(sqlite_url)
    assert runs and {r.status for r in runs} == {"ok"}, runs
    assert {(r.trigger, r.node) for r in runs} == {("schedule", first.node_id)}


async def test_two_daemons_on_one_host_default_to_ids_of_their_own(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str
) -> None:
    """Default ids are unique per process: neither takes the other's runs for its own."""
    app, _seen = items_app(pages=3, delay=0.2)
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url=await serve(app),
        pipelines=pipeline_toml("slow", '{ interval = "700ms", overlap = "parallel" }', pages=3),
    )
    first = await start_daemon(config, None)
    second = None
    try:
        await first.wait_ready()
        second = await start_daemon(config, None)
        await second.wait_ready()
        assert first.node_id != second.node_id
        assert first.node_id.endswith(f"-{first.pid}") and second.node_id.endswith(f"-{second.pid}")
        await wait_for(
            lambda: (
                {r.node for r in read_runs(sqlite_url) if r.status == "ok"}
                >= {first.node_id, second.node_id}
            ),
            20,
            what="runs by both daemons",
        )
        for daemon in (first, second):
            daemon.send(signal.SIGTERM)
            assert await daemon.wait_exit(15) == 0, daemon.output()
    finally:
        await first.aclose()
        if second is not None:
            await second.aclose()
    assert "interrupted" not in {r.status for r in read_runs(sqlite_url)}


async def test_after_kill_9_stale_files_are_cleared_and_the_node_restarts(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str
) -> None:
    app, _seen = items_app(pages=6, delay=0.3)
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url=await serve(app),
        pipelines=pipeline_toml("slow", '{ interval = "1s" }', pages=6),
    )
    killed = await start_daemon(config, "k9")
    restarted = None
    try:
        info = await killed.wait_ready()
        (victim,) = await wait_for(
            lambda: [r for r in read_runs(sqlite_url) if r.status == "running"],
            15,
            what="a run to be killed",
        )
        killed.process.kill()
        await killed.process.wait()
        assert killed.info() == info  # left behind, naming a dead pid and a closed port
        assert (config.parent / ".podium" / "daemon-k9.lock").exists()

        code, _out, err = await podium("reload", "--config", str(config), "--node-id", "k9")
        assert code == 1 and "node 'k9' is not running" in err and "Traceback" not in err, err
        assert "removed 1 stale runtime file" in err and killed.info() is None

        restarted = await start_daemon(config, "k9")  # the kernel released the lock
        await restarted.wait_ready()
        assert {r.id: r.status for r in read_runs(sqlite_url)}[victim.id] == "interrupted"
        code, out, err = await podium("reload", "--config", str(config))
        assert code == 0 and f"reloaded node k9 (pid {restarted.pid})" in out, err
        restarted.send(signal.SIGTERM)
        assert await restarted.wait_exit(15) == 0, restarted.output()
    finally:
        await killed.aclose()
        if restarted is not None:
            await restarted.aclose()


def test_node_lock_is_exclusive_until_released(tmp_path: Path) -> None:
    with hold_node(tmp_path, "n") as path:
        assert path.read_text().strip() == str(os.getpid())
        with (
            pytest.raises(NodeIdInUse, match=r"node 'n' is already running \(pid \d+\)"),
            hold_node(tmp_path, "n"),
        ):
            pass
        with hold_node(tmp_path, "m"):  # other node ids are independent
            pass
    with hold_node(tmp_path, "n"):  # released on exit (and by the kernel on kill -9)
        pass


SECRET = "Bearer s3cr3t-token-do-not-log"


async def test_failed_runs_log_no_exception_text(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expected failures log the type name (and a PodiumError's own message); a bug logs
    where it was raised; none logs an exception's value or attaches the exception."""
    request = aiohttp.RequestInfo(
        yarl.URL("http://api.test/items"),
        "GET",
        CIMultiDictProxy(CIMultiDict({"Authorization": SECRET})),
        yarl.URL("http://api.test/items"),
    )
    failures: dict[str, BaseException] = {
        "leaky": aiohttp.ClientResponseError(request, (), status=401, message="Unauthorized"),
        "bug": KeyError(SECRET),
        "known": HTTPStatusError("GET http://api.test/items: HTTP 401", url="http://api.test"),
    }
    assert SECRET in repr(failures["leaky"])  # what the JSON sink once wrote

    async def failing_run(pipeline: Any, **_kwargs: Any) -> None:
        raise failures[pipeline.name]

    monkeypatch.setattr(jobs_pool, "run_pipeline", failing_run)
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url="http://127.0.0.1:9",
        pipelines="".join(pipeline_toml(name, '{ interval = "300ms" }') for name in failures),
    )
    records: list[dict[str, Any]] = []
    text = io.StringIO()
    logger.enable("podium")  # a library's records are off until its host enables them
    handlers = [
        logger.add(lambda message: records.append(message.record), level="DEBUG"),
        logger.add(text, level="DEBUG", format="{message}", backtrace=False, diagnose=False),
    ]
    try:
        daemon = Daemon(config, node_id="logs")
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.run)
            await wait_for(
                lambda: (
                    all(f"failed: {n}" in text.getvalue() for n in ("ClientResponseError",))
                    and "internal error: KeyError" in text.getvalue()
                    and "could not start a run: GET http://api.test/items: HTTP 401"
                    in text.getvalue()
                ),
                15,
                what="each kind of failure to be logged",
            )
            daemon.stop()
    finally:
        for handler in handlers:
            logger.remove(handler)
        logger.disable("podium")
    assert SECRET not in text.getvalue() and "s3cr3t" not in text.getvalue()
    assert all(r["exception"] is None for r in records)  # no sink can repr() one
    assert "in failing_run" in text.getvalue()  # the bug still says where it happened
    assert not any("Unauthorized" in r["message"] for r in records)  # no str(exc) either


async def test_a_daemon_that_does_not_answer_is_reported_not_forgotten(
    serve: Callable[..., object], tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow endpoint may be a busy daemon: its runtime file stays, nothing is signalled."""

    async def hang(_request: web.Request) -> web.Response:
        await anyio.sleep(30)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/status", hang)
    port = int(str(await serve(app)).rsplit(":", 1)[1])
    config = write_config(
        tmp_path / "config.toml",
        database=sqlite_url,
        base_url="http://127.0.0.1:9",
        pipelines=pipeline_toml("p", '{ interval = "1h" }'),
    )
    stale = write_stale_runtime(config, "busy", os.getpid(), port)
    monkeypatch.setattr(jobs_control, "STATUS_TIMEOUT", 0.3)
    with pytest.raises(PodiumError, match=r"node 'busy' at http://127.0.0.1:\d+ did not answer"):
        await jobs_control.request_reload(config)
    with pytest.raises(PodiumError, match="did not answer"):
        await jobs_control.fetch_statuses(config, "busy")
    assert stale.exists()
