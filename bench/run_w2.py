"""W2 benchmark harness: a 500-page next-URL chain, podium vs the raw aiohttp + sqlite3 reference.

    .venv/bin/python bench/run_w2.py [--repeat 3]

W2 is the opposite of W1: nothing can run concurrently (the next page's URL is in the page),
so it measures podium's per-request latency on the sequential path rather than its CPU per
record, and wall time is the target (≤ 1.2× the reference, from the issue). Same server,
same measurement, same verification (exactly the 10,000 distinct rows the server sent for that
run's generation), same records as W1 — only the workload differs; see bench/_harness.py and
bench/README.md. Records in bench/RESULTS.md and bench/results/w2-latest.json.

Exit status: 0 all verified and the wall target met; 1 target missed; 2 a contender, the server
or a verification failed; 3 podium is not installed yet (the reference is still measured).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The harness sits next to this file; also found when run with -m or from another folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

W2 = _harness.Workload(
    name="W2",
    summary="follow a 500-page next-URL chain sequentially, 20 records a page, upsert 10k rows",
    reference_script="bench/w2_reference.py",
    config="bench/w2.toml",  # reads W2_URL and W2_DB
    pipeline="w2",
    env_prefix="W2",
    expected_rows=_harness.w1_server.CHAIN_ROWS,
    # Wall, because a sequential chain is latency-bound: what a user waits for.
    target_metric="wall_s",
    target_ratio=1.2,
)

if __name__ == "__main__":
    _harness.run_main(W2)
