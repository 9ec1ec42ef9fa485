"""W1 in steady state across source trees: which commit made podium's runs cost more?

    .venv/bin/python bench/w1_trees.py [--rounds 3] TREE [TREE ...]

Each TREE is a checkout with its own ``.venv`` (``git worktree add --detach DIR COMMIT``,
then ``python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'`` in it; trees from
before 2026-12 install generic top-level packages, so never share a venv). Every round
starts one process per tree, in alternating order, against one shared bench server; a
process runs one unmeasured warm-up of each contender, then ``--per-process`` rounds of
podium and the reference alternately, as ``w1_inprocess.py`` does. Reported per tree:
the median of the per-round podium / reference CPU ratios, and user and system CPU apart
(the kernel's share of loopback traffic is not podium's code). Ratios taken within one
process are what survive a shared machine; compare trees within one session.

Prints a Markdown table; writes nothing (paste what you keep into RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
KINDS = ("podium", "reference")


def child(tree: Path, url: str, rounds: int) -> None:
    """Runs inside TREE's venv: its podium, its bench files; prints one JSON line."""
    import anyio

    sys.path.insert(0, str(tree / "bench"))
    import w1_reference

    try:
        from podium.orchestrator import (
            configure_logging,
            load_config,
            open_database,
            run_pipeline,
        )
    except ImportError:  # a tree from before the single import name
        from orchestrator import load_config, open_database, run_pipeline  # type: ignore
        from orchestrator._logging import configure_logging  # type: ignore

    configure_logging(level="WARNING")
    db = Path(os.environ.get("TMPDIR", "/tmp")) / f"w1-trees-{os.getpid()}.db"

    def remove_db() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)

    async def podium() -> int:
        os.environ["W1_URL"], os.environ["W1_DB"] = url, str(db)
        config = load_config(tree / "bench" / "w1.toml")
        pipeline = config.pipeline("w1")
        async with open_database(config.database.url) as database:
            result = await run_pipeline(
                pipeline,
                connectors=config.connectors_for(pipeline),
                database=database,
                concurrency=config.limits.concurrency,
            )
        assert result.status == "ok", result.run.error
        return int(result.run.stored)

    def one(kind: str) -> tuple[float, float, float]:
        remove_db()
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
        if kind == "podium":
            rows = anyio.run(podium)
        else:
            rows = asyncio.run(w1_reference.run(url, str(db)))
        cpu, after = time.process_time() - start, resource.getrusage(resource.RUSAGE_SELF)
        remove_db()
        assert rows == 100_000, (kind, rows)
        return cpu, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime

    for kind in KINDS:
        one(kind)  # warm-up: first-use costs are not steady state
    out: dict[str, list[float]] = {}
    for i in range(rounds):
        for kind in KINDS if i % 2 == 0 else KINDS[::-1]:
            for label, value in zip(("cpu", "user", "sys"), one(kind), strict=True):
                out.setdefault(f"{kind}_{label}", []).append(value)
    print(json.dumps(out))


def summary(runs: dict[str, list[float]]) -> dict[str, float]:
    ratio = [p / r for p, r in zip(runs["podium_cpu"], runs["reference_cpu"], strict=True)]
    user = [p / r for p, r in zip(runs["podium_user"], runs["reference_user"], strict=True)]
    med: dict[str, Any] = {k: statistics.median(v) for k, v in runs.items()}
    return {"ratio": statistics.median(ratio), "user_ratio": statistics.median(user), **med}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=3, help="processes per tree")
    parser.add_argument("--per-process", type=int, default=3, help="rounds in each")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.trees[0], args.url, args.per_process)
        return 0
    trees = [t.resolve() for t in args.trees]
    server = subprocess.Popen(
        [sys.executable, str(BENCH / "w1_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    runs: dict[Path, dict[str, list[float]]] = {t: {} for t in trees}
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().split()[1]}"
        for i in range(args.rounds):
            for tree in trees if i % 2 == 0 else trees[::-1]:
                done = subprocess.run(
                    [str(tree / ".venv/bin/python"), __file__, str(tree), "--child",
                     "--url", url, "--per-process", str(args.per_process)],
                    cwd=tree, capture_output=True, text=True, check=False,
                )  # fmt: skip
                if done.returncode:
                    print(done.stderr[-3000:], file=sys.stderr)
                    return 2
                for key, values in json.loads(done.stdout.splitlines()[-1]).items():
                    runs[tree].setdefault(key, []).extend(values)
                print(f"  round {i} {tree.name}", file=sys.stderr, flush=True)
    finally:
        server.terminate()
        server.wait(10)
    n = args.rounds * args.per_process
    print(f"{n} podium/reference pairs per tree, {os.cpu_count()} cores\n")
    print("| tree | podium / reference CPU | user CPU ratio | podium user s | sys s |")
    print("|---|---:|---:|---:|---:|")
    for tree in trees:
        s = summary(runs[tree])
        print(f"| {tree.name} | {s['ratio']:.2f}× | {s['user_ratio']:.2f}× | "
              f"{s['podium_user']:.2f} | {s['podium_sys']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
