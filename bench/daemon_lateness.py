"""Firing lateness of `podium daemon` on the embedded (memory) store.

Lateness = run start (podium_runs.started_at) minus its scheduled fire time, for an
every-250 ms interval schedule and an every-second cron schedule running side by side.
Target: p99 ≤ 50 ms. Run: `.venv/bin/python bench/daemon_lateness.py [--seconds 30]`.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import anyio
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _daemon_common import api_app, config_text, record

from podium.jobs import Daemon
from podium.orchestrator import configure_logging


async def measure(seconds: float, workdir: Path) -> list[float]:
    server = TestServer(api_app(), host="127.0.0.1", port=0)
    await server.start_server()
    db = workdir / "lateness.db"
    config = workdir / "config.toml"
    schedules = {"interval": '{ interval = "250ms" }', "cron": '{ cron = "* * * * * *" }'}
    config.write_text(
        config_text(f"sqlite:///{db}", str(server.make_url("")).rstrip("/"), schedules)
    )
    try:
        daemon = Daemon(config, node_id="bench")
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.run)
            await anyio.sleep(seconds)
            daemon.stop()
    finally:
        await server.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT started_at, scheduled_for FROM podium_runs").fetchall()
    return [
        (datetime.fromisoformat(s) - datetime.fromisoformat(f)).total_seconds() * 1000
        for s, f in rows
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        late = anyio.run(measure, args.seconds, Path(tmp), backend="asyncio")
    late.sort()
    p99 = late[min(len(late) - 1, round(0.99 * (len(late) - 1)))]
    median = statistics.median(late)
    ok = p99 <= 50
    lines = [
        f"{len(late)} fires in {args.seconds:g} s (interval 250 ms + cron every second, memory "
        "store, SQLite run table, 1-request pipeline).",
        "",
        "| lateness | ms |",
        "|---|---:|",
        f"| min | {late[0]:.1f} |",
        f"| median | {median:.1f} |",
        f"| p99 | {p99:.1f} |",
        f"| max | {late[-1]:.1f} |",
        "",
        f"**p99 ≤ 50 ms: {'PASS' if ok else 'FAIL'}**",
    ]
    if args.no_record:
        print("\n".join(lines))
    else:
        record("Daemon firing lateness", lines)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
