"""Two daemon processes sharing the real PostgreSQL: every fire once, and a crash taken over."""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from .daemon_helpers import (
    DaemonProcess,
    pipeline_toml,
    read_runs,
    start_daemon,
    wait_for,
    write_config,
)
from .servers import items_app

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def shared_config(tmp_path: Path, postgres_url: str, base_url: str, pipelines: str) -> Path:
    scheduler_url = postgres_url.replace("postgresql://", "postgresql+asyncpg://")
    return write_config(
        tmp_path / "config.toml",
        database=postgres_url,
        base_url=base_url,
        pipelines=pipelines,
        scheduler=f'url = "{scheduler_url}"\ngrace = "2s"',
    )


async def stop_all(*daemons: DaemonProcess) -> None:
    for daemon in daemons:
        if daemon.process.returncode is None:
            daemon.send(signal.SIGTERM)
    for daemon in daemons:
        if daemon.process.returncode is None:
            assert await daemon.wait_exit(15) == 0, daemon.output()


async def test_two_nodes_run_every_fire_exactly_once(
    serve: Callable[..., object], tmp_path: Path, postgres_url: str
) -> None:
    app, seen = items_app(pages=1)
    config = shared_config(
        tmp_path, postgres_url, await serve(app), pipeline_toml("tick", '{ interval = "1s" }')
    )
    a = await start_daemon(config, "node-a")
    b = await start_daemon(config, "node-b")
    try:
        await a.wait_ready()
        await b.wait_ready()
        await anyio.sleep(20)
        await stop_all(a, b)
    finally:
        await a.aclose()
        await b.aclose()
    runs = read_runs(postgres_url, "tick")
    assert len(runs) >= 18, a.output() + b.output()
    fires = [r.scheduled_for for r in runs]
    assert len(set(fires)) == len(fires)
    gaps = {round((y - x).total_seconds(), 3) for x, y in itertools.pairwise(fires)}  # type: ignore[operator]
    assert gaps == {1.0}, gaps  # no fire missed, none doubled
    assert {r.status for r in runs} == {"ok"}
    assert seen.requests == len(runs)  # no duplicate delivery reached the API
    by_node = {r.node for r in runs}
    assert by_node == {"node-a", "node-b"}, by_node  # both nodes did work


async def test_kill_9_survivor_takes_over_and_restart_cleans_up(
    serve: Callable[..., object], tmp_path: Path, postgres_url: str
) -> None:
    app, seen = items_app(pages=3, delay=0.5)  # one run ≈ 1.5 s: a kill lands mid-run
    config = shared_config(
        tmp_path,
        postgres_url,
        await serve(app),
        pipeline_toml("work", '{ interval = "1s", overlap = "parallel" }', pages=3),
    )
    a = await start_daemon(config, "node-a")
    b = await start_daemon(config, "node-b")
    a2: DaemonProcess | None = None
    try:
        await a.wait_ready()
        await b.wait_ready()

        def running_on_a() -> list:
            return [
                r
                for r in read_runs(postgres_url, "work")
                if r.node == "node-a" and r.status == "running"
            ]

        (victim, *_) = await wait_for(running_on_a, 20, what="a run on node-a")
        a.process.kill()  # SIGKILL: no clean-up of any kind
        killed_at = datetime.now(UTC)
        started = time.monotonic()
        await a.process.wait()

        def fired_after_kill() -> list:
            return [
                r
                for r in read_runs(postgres_url, "work")
                if r.scheduled_for > killed_at and r.node == "node-b"  # type: ignore[operator]
            ]

        await wait_for(fired_after_kill, 30, what="node-b to fire after the kill")
        takeover = time.monotonic() - started
        assert takeover < 30
        await anyio.sleep(3)
        after = fired_after_kill()
        steps = [
            (y.scheduled_for - x.scheduled_for).total_seconds()  # type: ignore[operator]
            for x, y in itertools.pairwise(after)
        ]
        assert steps and max(steps) <= 1.001, steps  # the survivor fires every schedule
        print(f"takeover: first fire on the survivor {takeover:.2f}s after kill -9")

        a2 = await start_daemon(config, "node-a")
        await a2.wait_ready()
        # Restarted under its id, node-a closes its previous process's run at once (no
        # waiting for the lease); then one node continues it from its checkpoints.
        assert "left running" in a2.output()

        def victim_done() -> bool:
            run = {r.id: r for r in read_runs(postgres_url, "work")}[victim.id]
            return run.status == "ok" and run.attempt == 2

        await wait_for(victim_done, 30, what="the killed run to be continued and finished")
        await stop_all(a2, b)
    finally:
        await a.aclose()
        await b.aclose()
        if a2 is not None:
            await a2.aclose()
    runs_list = read_runs(postgres_url, "work")
    fires = [r.scheduled_for for r in runs_list]
    assert len(set(fires)) == len(fires)  # no fire ran twice
    # ... and only the killed run's in-flight pages may have reached the API twice.
    assert seen.requests <= 3 * len(runs_list) + 3
