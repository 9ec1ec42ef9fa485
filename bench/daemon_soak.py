"""Soak: thousands of short scheduled runs in one daemon process; does RSS stay flat?

An every-20 ms interval schedule (overlap = parallel) of a 1-request pipeline runs until
--runs runs have finished. RSS is sampled after a warm-up and at the end.
Run: `.venv/bin/python bench/daemon_soak.py [--runs 5000]`.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import anyio
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _daemon_common import api_app, config_text, record, rss_mb

from podium.jobs import Daemon
from podium.orchestrator import configure_logging


async def soak(runs: int, warmup: int, workdir: Path) -> dict[str, float]:
    server = TestServer(api_app(), host="127.0.0.1", port=0)
    await server.start_server()
    config = workdir / "config.toml"
    schedules = {"soak": '{ interval = "20ms", overlap = "parallel" }'}
    config.write_text(
        config_text(
            f"sqlite:///{workdir / 'soak.db'}", str(server.make_url("")).rstrip("/"), schedules
        )
    )
    out: dict[str, float] = {}
    try:
        daemon = Daemon(config, node_id="soak")
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.run)
            started = time.monotonic()

            def done() -> int:
                return sum(
                    s.value
                    for family in daemon.metrics.registry.collect()
                    if family.name == "podium_runs"
                    for s in family.samples
                    if s.name == "podium_runs_total"
                )

            while done() < warmup:  # noqa: ASYNC110 - sampling a counter
                await anyio.sleep(0.2)
            gc.collect()
            out["rss_warm"] = rss_mb()
            out["warm_runs"] = done()
            while done() < runs:  # noqa: ASYNC110 - sampling a counter
                await anyio.sleep(0.2)
            gc.collect()
            out["rss_end"] = rss_mb()
            out["runs"] = done()
            out["ok"] = daemon.metrics.sample("podium_runs_total", pipeline="soak", status="ok")
            out["seconds"] = time.monotonic() - started
            daemon.stop()
    finally:
        await server.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    rss_start = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        r = anyio.run(soak, args.runs, args.warmup, Path(tmp), backend="asyncio")
    growth = r["rss_end"] - r["rss_warm"]
    ok = growth <= 5
    lines = [
        f"{int(r['runs'])} runs ({int(r['ok'])} ok) in {r['seconds']:.0f} s, one process, "
        "memory store, SQLite run table, every 20 ms with overlap = parallel.",
        "",
        "| RSS | MB |",
        "|---|---:|",
        f"| at start (imports only) | {rss_start:.1f} |",
        f"| after {int(r['warm_runs'])} runs (warm) | {r['rss_warm']:.1f} |",
        f"| after {int(r['runs'])} runs | {r['rss_end']:.1f} |",
        f"| growth warm → end | {growth:+.1f} |",
        "",
        f"**RSS growth ≤ 5 MB over the soak: {'PASS' if ok else 'FAIL'}**",
    ]
    if args.no_record:
        print("\n".join(lines))
    else:
        record("Daemon soak", lines)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
