"""Large bodies through the record path: peak RSS of `podium run` while it stores them.

    .venv/bin/python bench/run_bodies.py [--no-record]

Starts bench/bodies_server.py in its own process (bodies generated while they are sent,
never built in memory), then runs `podium run` as a child for each body against a fresh
SQLite file, measuring its wall time, CPU time and peak RSS (wait4's ru_maxrss of that child
alone, see _harness.measure), and verifies the stored rows:

- ndjson: one body of 1,000,000 NDJSON lines (~110 MB);
- csv_gz: a CSV file of 200 MB uncompressed (1,000,000 rows of 200 bytes), sent gzip'd as
  a .gz download (application/gzip) and decompressed by podium as it arrives.

Target (issue 12): peak RSS under 150 MB for each. Appends a section to bench/RESULTS.md
and writes bench/results/bodies-latest.json. Exit status: 0 verified and under target;
1 a target missed; 2 a run, the server or a verification failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness

BENCH = Path(__file__).resolve().parent
TARGET_RSS_MB = 150.0
TIMEOUT_S = 900.0


def _server_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bodies_server", BENCH / "bodies_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


server_mod = _server_module()
CASES = [
    # (pipeline, table, rows expected, what the body is)
    ("ndjson", "lines", server_mod.NDJSON_LINES, "1,000,000-line NDJSON body"),
    ("csv_gz", "rows", server_mod.CSV_ROWS, "200 MB CSV (uncompressed), gzip'd .gz download"),
]


def start_server(log: Path) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "bodies_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        env=_harness.child_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}; see {log}")
    return proc, int(line.split()[1])


def verify(db: Path, table: str, expected: int) -> str:
    """'' when the table holds exactly the server's rows, else what is wrong."""
    with sqlite3.connect(db) as conn:
        # CSV values arrive as text: compared as numbers, the ids are those of NDJSON.
        count, low, high = conn.execute(
            f"select count(*), min(cast(id as integer)), max(cast(id as integer)) from {table}"
        ).fetchone()
        name = conn.execute(
            f"select name from {table} where cast(id as integer) = ?", (expected - 1,)
        ).fetchone()
    if count != expected or int(low) != 0 or int(high) != expected - 1:
        return f"{count} rows, ids {low}..{high}; expected {expected}, ids 0..{expected - 1}"
    if name is None or name[0] != f"item-{expected - 1}":
        return f"the last row reads {name!r}"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--podium", type=Path, default=_harness.default_podium())
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    work = _harness.new_workdir("bodies", started)
    _harness.become_subreaper()
    server, port = start_server(work / "server.err")
    results: list[dict[str, object]] = []
    try:
        for pipeline, table, expected, what in CASES:
            db = work / f"{pipeline}.db"
            env = _harness.child_env(BODIES_URL=f"http://127.0.0.1:{port}", BODIES_DB=str(db))
            cmd = [str(args.podium), "run", pipeline, "--config", str(BENCH / "bodies.toml")]
            sample = _harness.Sample()
            print(f"{pipeline}: {what} …", flush=True)
            _harness.measure(cmd, env, work / pipeline, TIMEOUT_S, sample)
            problem = sample.problem or verify(db, table, expected)
            row = {
                "pipeline": pipeline,
                "body": what,
                "rows": expected,
                "wall_s": round(sample.wall_s, 2),
                "cpu_s": round(sample.cpu_s, 2),
                "rss_mb": round(sample.rss_mb, 1),
                "problem": problem,
                "output_tail": sample.output_tail,
            }
            results.append(row)
            print(
                f"  wall {sample.wall_s:.1f} s, CPU {sample.cpu_s:.1f} s, "
                f"peak RSS {sample.rss_mb:.0f} MB{'; ' + problem if problem else ''}",
                flush=True,
            )
            db.unlink(missing_ok=True)  # hundreds of MB; the figures are what is kept
    finally:
        server.terminate()
        server.wait(10)
    failed = any(r["problem"] for r in results)
    missed = any(float(r["rss_mb"]) >= TARGET_RSS_MB for r in results)  # type: ignore[arg-type]
    if not args.no_record:
        record(results, started, failed, missed)
    return 2 if failed else 1 if missed else 0


def record(results: list[dict[str, object]], started: datetime, failed: bool, missed: bool) -> None:
    machine = _harness.machine_info()
    verdict = "FAIL (a run or its verification failed)" if failed else "FAIL" if missed else "PASS"
    section = [
        f"## Large bodies streamed into SQLite — {started:%Y-%m-%d %H:%M} UTC",
        "",
        _harness.machine_line(machine) + f"; load average at end {machine['loadavg_at_end']}.",
        "`podium run` as a child process per body (bench/run_bodies.py, bench/bodies.toml), "
        "fresh SQLite file, default store batch (2,000 rows); peak RSS is the child's "
        "ru_maxrss from wait4. Bodies are generated by the server as they are sent.",
        "",
        "| body | rows stored | wall s | CPU s | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        section.append(
            f"| {r['body']} | {r['rows']:,} | {r['wall_s']} | {r['cpu_s']} | {r['rss_mb']} |"
        )
    section += ["", f"**peak RSS < {TARGET_RSS_MB:.0f} MB for each body: {verdict}**", ""]
    _harness.append_results(section)
    _harness.write_json(
        _harness.RESULTS_DIR / "bodies-latest.json",
        {"started": started.isoformat(), "machine": machine, "results": results},
    )


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"done in {time.perf_counter() - start:.0f} s, exit status {code}")
    sys.exit(code)
