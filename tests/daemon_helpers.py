"""Helpers for the daemon tests: configs, subprocess daemons, and reading the run table."""

from __future__ import annotations

import itertools
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import anyio
import orjson
from anyio.abc import Process

PODIUM = str(Path(sys.executable).with_name("podium"))


async def podium_cli(
    *args: str, env: dict[str, str] | None = None, wide: bool = False
) -> tuple[int, str, str]:
    """``podium ARGS`` as a child process: its exit code, stdout and stderr. ``wide``
    keeps tables one row a line (COLUMNS=200), for tests that read them."""
    extra = {"COLUMNS": "200"} if wide else {}
    result = await anyio.run_process(
        [PODIUM, *args], check=False, env={**os.environ, **extra, **(env or {})}
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def pipeline_toml(name: str, schedule: str, *, pages: int = 1, extra: str = "") -> str:
    """A pipeline that fetches ``pages`` pages of 20 items from ``api`` and stores them."""
    return f"""
[pipelines.{name}]
schedule = {schedule}
{extra}

[[pipelines.{name}.stages]]
name = "items"
kind = "fetch"
connector = "api"
for_each = {{ range = [0, {pages}] }}
as = "page"
path = "/items/{{page}}"
records = "items"

[[pipelines.{name}.stages]]
name = "save"
kind = "store"
table = "items_{name}"
key = ["id"]
batch_size = 20
"""


def write_config(
    path: Path,
    *,
    database: str,
    base_url: str,
    pipelines: str,
    scheduler: str = "",
    concurrency: int = 1,
) -> Path:
    path.write_text(
        f"""
[database]
url = "{database}"

[scheduler]
port = 0
{scheduler}

[connectors.api]
kind = "http"
base_url = "{base_url}"
concurrency = {concurrency}
{pipelines}
""",
        encoding="utf-8",
    )
    return path


def daemon_config(tmp_path: Path, base_url: str, *, pipelines: str, scheduler: str = "") -> Path:
    """``write_config`` for the usual test: ``config.toml`` and a SQLite journal, both in
    ``tmp_path``."""
    return write_config(
        tmp_path / "config.toml",
        database=f"sqlite:///{tmp_path / 'podium.db'}",
        base_url=base_url,
        scheduler=scheduler,
        pipelines=pipelines,
    )


@dataclass
class DaemonProcess:
    process: Process
    node_id: str
    config: Path
    log_path: Path
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def info(self) -> dict[str, Any] | None:
        path = self.config.parent / ".podium" / f"daemon-{self.node_id}.json"
        try:
            return orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None

    def send(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def own_info(self) -> dict[str, Any] | None:
        """The runtime file, once this process (not a killed predecessor) has written it."""
        info = self.info()
        return info if info is not None and info.get("pid") == self.pid else None

    async def wait_ready(self, within: float = 20) -> dict[str, Any]:
        info = await wait_for(self.own_info, within, what=f"daemon {self.node_id} to start")
        await wait_for(
            lambda: "firing" in self.output(), within, what=f"daemon {self.node_id} to fire"
        )
        return info

    async def wait_exit(self, within: float) -> int:
        with anyio.fail_after(within):
            return await self.process.wait()

    async def aclose(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            with anyio.move_on_after(5, shield=True):
                await self.process.wait()
        await self.process.aclose()
        self.log.close()


async def start_daemon(config: Path, node_id: str | None) -> DaemonProcess:
    """``podium daemon`` in a subprocess; ``node_id=None`` leaves the default (host-pid)."""
    from podium.jobs._models import default_node_id

    log_path = config.parent / f"daemon-{node_id or 'default'}-{time.monotonic_ns()}.log"
    log = log_path.open("wb")
    flag = ["--node-id", node_id] if node_id is not None else []
    process = await anyio.open_process(
        [PODIUM, "daemon", "--config", str(config), *flag],
        stdin=None,
        stdout=log,
        stderr=log,
        cwd=config.parent,
    )
    return DaemonProcess(process, node_id or default_node_id(process.pid), config, log_path, log)


async def wait_for(
    predicate: Callable[[], Any], within: float, *, what: str, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` (a sync check of a file or table) until it is truthy."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await anyio.sleep(interval)


async def podium(*args: str) -> tuple[int, str, str]:
    """Run the ``podium`` CLI: exit code, stdout, stderr."""
    result = await anyio.run_process([PODIUM, *args], check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def steps(runs: list[Run]) -> list[timedelta]:
    """The gaps between consecutive nominal fire times (``scheduled_for``)."""
    times = [r.scheduled_for for r in runs]
    return [b - a for a, b in itertools.pairwise(times)]  # type: ignore[operator]


@dataclass
class Run:
    id: str
    pipeline: str
    trigger: str
    scheduled_for: datetime | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    stored: int
    requests: int
    node: str | None = None
    attempt: int = 1
    error: str | None = None

    @property
    def lateness(self) -> float:
        assert self.scheduled_for is not None
        return (self.started_at - self.scheduled_for).total_seconds()


_COLUMNS = (
    "id, pipeline, trigger, scheduled_for, status, started_at, finished_at, stored, requests, "
    "node, attempt, error"
)


def _aware(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def read_runs(url: str, pipeline: str | None = None) -> list[Run]:
    """The run table, oldest fire first (sync: brief reads from tests)."""
    query = f"SELECT {_COLUMNS} FROM podium_runs"
    rows = sql(url, query)
    runs = [
        Run(r[0], r[1], r[2], _aware(r[3]), r[4], _aware(r[5]), _aware(r[6]), *r[7:]) for r in rows
    ]
    runs = [r for r in runs if pipeline is None or r.pipeline == pipeline]
    return sorted(runs, key=lambda r: (r.scheduled_for or r.started_at, r.started_at))


def sql(url: str, query: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if not Path(path).exists():
            return []
        with sqlite3.connect(path) as db:
            try:
                return db.execute(query).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise
    import psycopg2  # type: ignore[import-untyped]

    conn = psycopg2.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(query)
            except psycopg2.errors.UndefinedTable:
                return []
            return cur.fetchall()
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
