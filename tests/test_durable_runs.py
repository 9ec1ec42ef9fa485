"""Runs survive their process: kill -9 at random moments, resume, and count on the server.

The API server runs in the test process and counts every request it receives; podium
runs as a separate process, killed with SIGKILL — no clean-up of any kind — and resumed
with ``podium run P --resume``.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from aiohttp import web

from .daemon_helpers import wait_for

pytestmark = pytest.mark.anyio
PODIUM = str(Path(sys.executable).with_name("podium"))
LEASE = "1s"  # short, so a killed run's lease runs out quickly


class Counting:
    """``/item/{n}`` (one record), ``/chain?cursor=k`` (a 200-page cursor chain) and
    ``/posts?_page=N`` (200 pages of 5 with their total in ``X-Total-Count``, json-server's
    way: a parallel page set)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.items: Counter[int] = Counter()
        self.cursors: list[int] = []
        self.pages: list[int] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/item/{n}", self.item)
        app.router.add_get("/chain", self.chain)
        app.router.add_get("/posts", self.posts)
        return app

    async def posts(self, request: web.Request) -> web.Response:
        page = int(request.query["_page"])
        self.pages.append(page)
        await asyncio.sleep(self.delay)
        items = [{"id": (page - 1) * 5 + i, "page": page} for i in range(5)] if page <= 200 else []
        return web.json_response(items, headers={"X-Total-Count": "1000"})

    async def item(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        self.items[n] += 1
        await asyncio.sleep(self.delay)
        return web.json_response({"id": n, "v": n * 2})

    async def chain(self, request: web.Request) -> web.Response:
        page = int(request.query.get("cursor", 0))
        self.cursors.append(page)
        await asyncio.sleep(self.delay)
        items = [{"id": page * 5 + i, "page": page} for i in range(5)]
        body: dict[str, Any] = {"items": items}
        if page < 199:
            body["next"] = page + 1
        return web.json_response(body)


def write_config(folder: Path, base: str) -> Path:
    path = folder / "config.toml"
    path.write_text(
        f"""
[database]
url = "sqlite:///{folder / "p.db"}"

[journal]
lease = "{LEASE}"

[connectors.api]
kind = "http"
base_url = "{base}"
concurrency = 16

[pipelines.fanout]
[[pipelines.fanout.stages]]
name = "items"
kind = "fetch"
connector = "api"
for_each = {{ range = [0, 2000] }}
path = "/item/{{value}}"

[[pipelines.fanout.stages]]
name = "save"
kind = "store"
table = "items"
key = ["id"]
batch_size = 1

[pipelines.chain]
[[pipelines.chain.stages]]
name = "pages"
kind = "fetch"
connector = "api"
path = "/chain"
records = "items"
paginate = {{ type = "cursor", path = "next", param = "cursor" }}

[[pipelines.chain.stages]]
name = "save"
kind = "store"
table = "chain"
key = ["id"]
batch_size = 5

[pipelines.parallel]
[[pipelines.parallel.stages]]
name = "posts"
kind = "fetch"
connector = "api"
path = "/posts"
[pipelines.parallel.stages.paginate]
type = "page_number"
param = "_page"
page_size = 5
page_size_param = "_limit"
total = "header:X-Total-Count"
parallel = true

[[pipelines.parallel.stages]]
name = "save"
kind = "store"
table = "posts"
key = ["id"]
batch_size = 5
""",
        encoding="utf-8",
    )
    return path


def start(config: Path, *args: str) -> subprocess.Popen[bytes]:
    """``podium run …`` in the background, its output appended to run.log."""
    with (config.parent / "run.log").open("ab") as log:
        return subprocess.Popen(
            [PODIUM, "run", *args, "--config", str(config)],
            cwd=config.parent, stdout=log, stderr=log,
        )  # fmt: skip


def query(config: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(config.parent / "p.db") as db:
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []


async def kill_when(process: subprocess.Popen[bytes], reached: Callable[[], bool]) -> None:
    await wait_for(reached, 60, what="the run to get going", interval=0.005)
    process.send_signal(signal.SIGKILL)
    await anyio.to_thread.run_sync(process.wait)


async def resume_after_lease(config: Path, pipeline: str) -> subprocess.Popen[bytes]:
    """The killed run's lease runs out (1 s), then --resume claims and continues it."""
    await anyio.sleep(1.2)
    return start(config, pipeline, "--resume")


async def test_ten_kills_during_a_fan_out_lose_nothing_and_redo_only_what_was_in_flight(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    server = Counting(delay=0.02)
    config = write_config(tmp_path, await serve(server.app()))
    rng = random.Random(20261201)
    process = start(config, "fanout")
    kills = 0
    for _ in range(10):
        seen = sum(server.items.values())
        target = seen + rng.randint(40, 180)  # a random moment: some requests in
        await kill_when(process, lambda target=target: sum(server.items.values()) >= target)  # type: ignore[misc]
        kills += 1
        process = await resume_after_lease(config, "fanout")
    code = await anyio.to_thread.run_sync(lambda: process.wait(120))
    assert code == 0, (tmp_path / "run.log").read_text()

    rows = query(config, "select id, v from items order by id")
    assert rows == [(n, n * 2) for n in range(2000)]  # exactly 2,000, none twice
    total = sum(server.items.values())
    redone = total - 2000
    print(f"{kills} kills: {total} requests in all, {redone} redone")
    assert redone <= 16 * kills  # at most what was in flight at each kill
    [(status, attempt, stored, requests, attempts, records_in)] = query(
        config,
        "select status, attempt, stored, requests, attempts, records_in from podium_runs",
    )
    # One row accounts for every attempt: stored exactly (it is counted in the rows' own
    # transactions), requests as of each killed attempt's last heartbeat.
    assert (status, attempt, stored) == ("ok", kills + 1, 2000)
    assert len(orjson.loads(attempts)) == kills
    assert 0 < requests <= total
    # Each attempt's counters were written with its last commit: what it read is never
    # less than what it stored (as of a heartbeat, records_in fell short of stored).
    assert records_in >= stored


async def test_a_cursor_chain_resumes_at_the_first_page_not_stored(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    server = Counting(delay=0.01)
    config = write_config(tmp_path, await serve(server.app()))
    process = start(config, "chain")
    for kill_at in (40, 95, 150):
        await kill_when(process, lambda at=kill_at: len(server.cursors) >= at)  # type: ignore[misc]
        stored_pages = len(query(config, "select distinct page from chain"))
        before = len(server.cursors)
        process = await resume_after_lease(config, "chain")
        await wait_for(
            lambda before=before: len(server.cursors) > before, 30, what="a resumed request"
        )  # type: ignore[misc]
        # The first page the resumed run asks for is the first one not stored.
        assert server.cursors[before] == stored_pages, (server.cursors[before - 2 :], stored_pages)
    assert await anyio.to_thread.run_sync(lambda: process.wait(120)) == 0
    assert query(config, "select count(*), count(distinct id) from chain") == [(1000, 1000)]
    assert sorted(set(server.cursors)) == list(range(200))
    assert len(server.cursors) <= 200 + 3  # at most the page in flight, once per kill


async def test_a_parallel_page_set_resumes_with_only_the_pages_not_stored(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    server = Counting(delay=0.01)
    config = write_config(tmp_path, await serve(server.app()))
    process = start(config, "parallel")
    kills = 0
    for kill_at in (50, 120):
        await kill_when(process, lambda at=kill_at: len(server.pages) >= at)  # type: ignore[misc]
        kills += 1
        process = await resume_after_lease(config, "parallel")
    code = await anyio.to_thread.run_sync(lambda: process.wait(120))
    assert code == 0, (tmp_path / "run.log").read_text()
    assert query(config, "select count(*), count(distinct id) from posts") == [(1000, 1000)]
    assert sorted(set(server.pages)) == list(range(1, 201))
    redone = len(server.pages) - 200
    print(f"{kills} kills: {len(server.pages)} page requests, {redone} redone")
    # Each resume asks for the first page again (it says which pages there are) and for
    # the pages in flight at the kill (the connector's concurrency), not the whole set.
    assert redone <= kills * (1 + 16), Counter(server.pages).most_common(5)
    # The carried pages' records still count towards the stated total: the run is ok,
    # not "ended after N of the 1000 records".
    [(status, attempt)] = query(config, "select status, attempt from podium_runs")
    assert (status, attempt) == ("ok", kills + 1)


async def test_a_killed_run_shows_interrupted_with_its_counts_without_any_daemon(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    server = Counting(delay=0.02)
    config = write_config(tmp_path, await serve(server.app()))
    process = start(config, "fanout")
    await kill_when(process, lambda: sum(server.items.values()) >= 400)
    killed = time.monotonic()

    def listed() -> dict[str, Any] | None:
        out = subprocess.run(
            [PODIUM, "runs", "--config", str(config), "--json"],
            capture_output=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        [run] = orjson.loads(out.stdout)
        return run if run["status"] == "interrupted" else None

    run = await wait_for(listed, 10, what="the run to be marked interrupted")
    assert time.monotonic() - killed <= 2 * 1.0 + 1.5  # two leases (and a command's start-up)
    assert "abandoned" in run["error"] and "stopped renewing its lease" in run["error"]
    assert run["stored"] > 0 and run["requests"] > 0  # what it really did, not zeros
    assert run["records_in"] >= run["stored"] and run["requests"] >= run["stored"]
    assert run["stored"] == query(config, "select count(*) from items")[0][0]


async def test_resume_is_refused_when_the_pipeline_changed(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    server = Counting(delay=0.02)
    config = write_config(tmp_path, await serve(server.app()))
    process = start(config, "fanout")
    await kill_when(process, lambda: sum(server.items.values()) >= 100)
    await anyio.sleep(1.2)
    text = config.read_text(encoding="utf-8").replace("range = [0, 2000]", "range = [0, 2001]")
    config.write_text(text, encoding="utf-8")
    resumed = await anyio.run_process(
        [PODIUM, "run", "fanout", "--resume", "--config", str(config)], cwd=tmp_path, check=False
    )
    stderr = resumed.stderr.decode()
    assert resumed.returncode == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "another definition of the pipeline" in lines[0], lines
    # Refused before it was claimed: the interrupted run is left as it was.
    assert query(config, "select status, attempt from podium_runs") == [("interrupted", 1)]


async def test_sigterm_records_the_run_interrupted_at_once(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    """`timeout`, systemd and container runtimes stop a process with SIGTERM: the run is
    recorded interrupted as it goes (it stayed `running` until its lease ran out)."""
    server = Counting(delay=0.02)
    config = write_config(tmp_path, await serve(server.app()))
    process = start(config, "fanout")
    await wait_for(lambda: sum(server.items.values()) >= 50, 60, what="the run to get going")
    process.send_signal(signal.SIGTERM)
    code = await anyio.to_thread.run_sync(lambda: process.wait(30))
    assert code == 130, (tmp_path / "run.log").read_text()
    [(status, stored)] = query(config, "select status, stored from podium_runs")
    assert status == "interrupted" and stored > 0
    resumed = start(config, "fanout", "--resume")  # no lease to wait for: it was let go
    assert await anyio.to_thread.run_sync(lambda: resumed.wait(120)) == 0
    assert query(config, "select count(*) from items") == [(2000,)]
