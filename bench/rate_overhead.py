"""Rate-budget overhead: what the gateway's budget costs a request when it does not bind.

    .venv/bin/python bench/rate_overhead.py [--requests 20000] [--repeat 5] [--no-record]

Sends the same requests through ``Gateway.send`` on an in-memory transport (no socket, so
the gateway's own work is all that is timed) with four connector configs:

1. ``rate_headers = false``, no rate: no budget at all (the gateway skips it);
2. the default: no rate, the API's rate-limit headers read on every answer;
3. ``rate = "10000000/s"``: a bucket that never fills, headers read;
4. as 3, and every answer carries ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset``.

Rounds alternate the configs; the figures are medians of CPU µs per request, and the
overhead of each against config 1. Appends a section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from podium.connectors import ConnectorConfig, HttpConnector, Request
from podium.orchestrator._redact import Redactor
from podium.orchestrator.http import Budgets, Gateway, MockTransport, reply

BENCH = Path(__file__).resolve().parent
CONFIGS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "no budget": ({"rate_headers": False}, {}),
    "headers read (default)": ({}, {}),
    "rate, not binding": ({"rate": "10000000/s"}, {}),
    "rate + quota headers": (
        {"rate": "10000000/s"},
        {"X-RateLimit-Remaining": "100000000", "X-RateLimit-Reset": "60"},
    ),
}


async def one_round(settings: dict[str, Any], headers: dict[str, str], requests: int) -> float:
    """CPU seconds per request through the gateway, for ``requests`` sequential sends."""
    answer = reply(json={"id": 1}, headers=headers)
    transport = MockTransport(lambda request: answer)
    config = ConnectorConfig(kind="http", base_url="http://bench.invalid", **settings)
    connectors = {"api": HttpConnector("api", config)}
    request = Request("GET", "http://bench.invalid/x")
    async with Gateway(
        connectors,
        concurrency=16,
        stats={},
        redactor=Redactor(()),
        transports=transport,
        budgets=Budgets(),
    ) as gateway:
        for _ in range(200):  # warm
            await gateway.send("api", request)
        started = time.process_time()
        for _ in range(requests):
            await gateway.send("api", request)
        return (time.process_time() - started) / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    samples: dict[str, list[float]] = {name: [] for name in CONFIGS}
    names = list(CONFIGS)
    for i in range(args.repeat):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            settings, headers = CONFIGS[name]
            samples[name].append(asyncio.run(one_round(settings, headers, args.requests)))
    medians = {name: statistics.median(v) * 1e6 for name, v in samples.items()}
    base = medians["no budget"]
    rows = [f"| {name} | {us:.1f} | {us - base:+.1f} |" for name, us in medians.items()]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join(
        [
            f"## Rate-budget overhead — {stamp}",
            "",
            f"Machine: {platform.machine()}, Python {platform.python_version()}; "
            f"{args.requests} sequential `Gateway.send` per round on an in-memory transport, "
            f"{args.repeat} alternating rounds, medians of CPU µs per request.",
            "",
            "| config | CPU µs / request | vs no budget |",
            "|---|---:|---:|",
            *rows,
            "",
        ]
    )
    print(section)
    if not args.no_record:
        with (BENCH / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write("\n" + section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
