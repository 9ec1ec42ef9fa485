"""`make bench`: W1, W2 and the start-up benchmark, one after the other, each recorded.

    .venv/bin/python bench/run_all.py [--no-record]

Each benchmark runs as its own process (run_w1.py, run_w2.py, startup.py), so one's server,
subreaper state or failure cannot leak into the next, and a missed target in W1 does not stop
W2 and start-up from being measured. Rounds: W1 5 (its runs are the longest), W2 and start-up
7 (short runs, noisier). Together about two minutes on the 2-core machine.

Exit status: the worst of the three — 2 if any failed (or 3 if podium is missing), else 1 if
any target was missed, else 0; 130 if interrupted (the rest is skipped).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BENCHMARKS = [
    ("W1", ["run_w1.py", "--repeat", "5"]),
    ("W2", ["run_w2.py", "--repeat", "7"]),
    ("start-up", ["startup.py", "--repeat", "7"]),
]
# Worst first: an error outranks a missed target, which outranks success.
SEVERITY = [2, 3, 1, 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-record", action="store_true", help="do not touch RESULTS.md or the JSON files"
    )
    args = parser.parse_args(argv)
    extra = ["--no-record"] if args.no_record else []
    statuses: dict[str, int] = {}
    for name, (script, *options) in BENCHMARKS:
        print(f"=== {name}: {script} {' '.join(options)}", flush=True)
        try:
            code = subprocess.call([sys.executable, str(BENCH / script), *options, *extra])
        except KeyboardInterrupt:
            code = 130
        statuses[name] = code
        print(f"=== {name}: exit status {code}\n", flush=True)
        if code == 130:
            print("interrupted; the remaining benchmarks were skipped", file=sys.stderr)
            return 130
    print("summary: " + ", ".join(f"{name} {code}" for name, code in statuses.items()))
    codes = set(statuses.values())
    for code in SEVERITY:
        if code in codes:
            return code
    return max(codes)  # an unexpected status: pass it on


if __name__ == "__main__":
    sys.exit(main())
