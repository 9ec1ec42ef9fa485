"""W1 in steady state: podium and the reference in ONE process, imports excluded.

    .venv/bin/python bench/w1_inprocess.py [--repeat 5] [--no-record]

`run_w1.py` measures whole processes, which is what a one-off `podium run` costs. A
daemon pays its imports once and then runs pipelines for weeks, so this script measures
what each run costs after start-up: both contenders are imported first, then run
alternately against the same server process, each timed with process CPU time. The ratio
here is podium's per-request and per-record overhead over the raw aiohttp + sqlite3 loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import w1_reference  # noqa: E402

from podium.orchestrator import (  # noqa: E402
    configure_logging,
    load_config,
    open_database,
    run_pipeline,
)


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def run_podium(url: str, db: Path) -> int:
    os.environ["W1_URL"], os.environ["W1_DB"] = url, str(db)
    config = load_config(BENCH / "w1.toml")
    pipeline = config.pipeline("w1")
    async with open_database(config.database.url) as database:
        result = await run_pipeline(
            pipeline,
            connectors=config.connectors_for(pipeline),
            database=database,
            concurrency=config.limits.concurrency,
        )
    assert result.status == "ok", result.run.error
    return result.run.stored


def timed(fn, *args) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    start = time.process_time()
    rows = fn(*args)
    return time.process_time() - start, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--no-record", action="store_true", help="print the table; leave RESULTS.md alone"
    )
    args = parser.parse_args()
    configure_logging(level="WARNING")
    server = subprocess.Popen(
        [sys.executable, str(BENCH / "w1_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().split()[1]}"
        tmp = BENCH / "results" / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        cpu: dict[str, list[float]] = {"reference": [], "podium": []}
        for i in range(args.repeat):
            order = ("podium", "reference") if i % 2 else ("reference", "podium")
            for name in order:
                db = tmp / f"inprocess-{name}.db"
                remove_db(db)
                if name == "podium":
                    seconds, rows = timed(anyio.run, run_podium, url, db)
                else:
                    seconds, rows = timed(asyncio.run, w1_reference.run(url, str(db)))
                assert rows == 100_000, (name, rows)
                cpu[name].append(seconds)
                print(f"  round {i} {name:9} cpu {seconds:5.2f} s")
                remove_db(db)
    finally:
        server.terminate()
        server.wait(10)
    ref, pod = statistics.median(cpu["reference"]), statistics.median(cpu["podium"])
    lines = [
        f"## W1 in-process (imports excluded) — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{args.repeat} rounds, alternating; medians of process CPU seconds; "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "",
        "| contender | CPU s |",
        "|---|---:|",
        f"| reference | {ref:.2f} |",
        f"| podium | {pod:.2f} |",
        f"| podium / reference | {pod / ref:.2f}× |",
        "",
    ]
    print("\n".join(lines))
    if not args.no_record:
        with (BENCH / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
