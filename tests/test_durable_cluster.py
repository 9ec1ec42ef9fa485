"""Three daemons on one PostgreSQL: a fire survives its node, and overlap is cluster-wide.

A 2.5 s pipeline fires every second with ``overlap = "skip"``: each fire lands on one of
three nodes, and without a lock shared by all of them runs would overlap dozens of times.
One node is killed with SIGKILL in the middle of a run; a survivor must continue that run
— the same row, its next attempt — within 30 s, and nothing may run twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import orjson
import pytest

from .daemon_helpers import pipeline_toml, read_runs, sql, start_daemon, wait_for
from .servers import items_app
from .test_daemon_postgres import shared_config, stop_all

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def attempt_intervals(url: str) -> list[tuple[str, datetime, datetime]]:
    """(run id, from, to) of every attempt of every run: when each held the pipeline."""
    rows = sql(url, "SELECT id, started_at, finished_at, attempts FROM podium_runs")
    out = []
    for run_id, started, finished, attempts in rows:
        history = orjson.loads(attempts) if isinstance(attempts, str) else (attempts or [])
        begin = started
        for entry in history:
            out.append((run_id, datetime.fromisoformat(entry["started_at"]),
                        datetime.fromisoformat(entry["ended_at"])))  # fmt: skip
            begin = datetime.fromisoformat(entry["resumed_at"])
        out.append((run_id, begin, finished or datetime.now(UTC)))
    return out


async def test_a_killed_nodes_fire_is_finished_by_another_and_nothing_overlaps(
    serve: Callable[..., object], tmp_path: Path, postgres_url: str
) -> None:
    app, seen = items_app(pages=5, delay=0.5)  # one run: 5 pages one after another, 2.5 s
    config = shared_config(
        tmp_path,
        postgres_url,
        await serve(app),
        pipeline_toml("work", '{ interval = "1s", overlap = "skip" }', pages=5)
        + '\n[journal]\nlease = "6s"\n',
    )
    nodes = [await start_daemon(config, f"node-{n}") for n in "abc"]
    try:
        for node in nodes:
            await node.wait_ready()

        def in_flight_on_a() -> list:
            return [
                r
                for r in read_runs(postgres_url, "work")
                if r.node == "node-a" and r.status == "running" and r.stored >= 20
            ]

        (victim, *_) = await wait_for(in_flight_on_a, 60, what="a run half done on node-a")
        nodes[0].process.kill()  # SIGKILL: no clean-up of any kind
        killed = anyio.current_time()
        await nodes[0].process.wait()

        def finished_elsewhere() -> object:
            run = next(r for r in read_runs(postgres_url, "work") if r.id == victim.id)
            return run if run.status == "ok" and run.attempt == 2 else None

        done = await wait_for(finished_elsewhere, 30, what="another node to finish the fire")
        taken = anyio.current_time() - killed
        assert done.node in ("node-b", "node-c")
        assert done.stored == 100 and done.scheduled_for == victim.scheduled_for
        print(f"fire finished on {done.node} {taken:.1f}s after kill -9")
        await anyio.sleep(4)  # more fires, more chances to overlap
        await stop_all(*nodes[1:])
    finally:
        for node in nodes:
            await node.aclose()

    runs = read_runs(postgres_url, "work")
    # Fires are skipped while a run holds the pipeline — the dead one too, until its
    # lease lapses: a few runs, most fires skipped.
    assert len(runs) >= 3
    fires = [r.scheduled_for for r in runs]
    assert len(set(fires)) == len(fires)  # no fire ran twice
    assert {r.status for r in runs} <= {"ok", "interrupted"}
    # Requests: each run's five pages, plus at most the page in flight at the kill.
    assert seen.requests <= 5 * len(runs) + 1
    intervals = attempt_intervals(postgres_url)
    overlapping = [
        (a, b)
        for a, b in itertools.combinations(intervals, 2)
        if a[0] != b[0] and a[1] < b[2] and b[1] < a[2]
    ]
    assert overlapping == []  # overlap = "skip" held across the three nodes
    assert len({r.node for r in runs}) >= 2
