"""Per-record cost of expressions: JMESPath paths (the dict-walk shortcut), full JMESPath,
podium's JMESPath functions, and ``expr:`` formulas; and of a compute transform over a
batch. One command:

    .venv/bin/python bench/expr_bench.py

Prints a Markdown table (median of 7 rounds, µs per evaluation, process CPU time) to
paste into bench/RESULTS.md.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jmespath

from podium.pipeline import Expr, Transform

RECORD = {
    "id": 7, "value": 21, "price": 2.5, "qty": 4, "name": "Ada", "last": "Lovelace",
    "status": "OPEN", "created": "2026-11-30T10:00:00Z", "data": {"current": {"temp": 3}},
}  # fmt: skip
CASES = [
    ("path (shortcut)", "data.current.temp"),
    ("JMESPath comparison", "qty > `2`"),
    ("JMESPath lower()", "lower(status)"),
    ("JMESPath concat()", "concat(name, ' ', last)"),
    ("JMESPath date_add()", "date_add(created, '1d')"),
    ("formula value * 2", "expr: value * 2"),
    ("formula price * qty > 9", "expr: price * qty > 9"),
    ("formula now() - duration('2h')", "expr: now() - duration('2h')"),
    ("formula concat(lower(...))", "expr: concat(lower(name), '-', id * 100)"),
]
N = 20_000
ROUNDS = 7


def per_call(fn: Callable[[], Any], n: int = N) -> float:
    """Median µs per call over ROUNDS rounds of ``n`` calls."""
    samples = []
    for _ in range(ROUNDS):
        start = time.process_time()
        for _ in range(n):
            fn()
        samples.append((time.process_time() - start) / n * 1e6)
    return statistics.median(samples)


def main() -> None:
    print("| expression | µs per record |")
    print("|---|---:|")
    # What Expr did before podium's functions: jmespath's own search, no options.
    before = jmespath.compile("qty > `2`").search
    us = per_call(lambda: before(RECORD))
    print(f"| before: JMESPath comparison (`qty > `2``), no custom functions | {us:.2f} |")
    for label, source in CASES:
        search = Expr(source).search
        print(f"| {label} (`{source}`) | {per_call(lambda s=search: s(RECORD)):.2f} |")
    batch = [dict(RECORD) for _ in range(1_000)]
    for label, compute in [
        ("compute, 3 JMESPath paths", {"a": "value", "b": "name", "c": "data.current.temp"}),
        ("compute, 3 formulas", {"a": "expr: value * 2", "b": "expr: price * qty",
                                 "c": "expr: value + qty"}),
    ]:  # fmt: skip
        ops = Transform(name="t", compute=compute).ops
        assert ops is not None
        us = per_call(lambda o=ops: o([dict(r) for r in batch]), n=20) / len(batch)
        print(f"| {label}, per record of a 1,000-record batch | {us:.2f} |")


if __name__ == "__main__":
    main()
