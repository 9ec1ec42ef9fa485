"""Local server for the large-body benchmark: bodies generated while they are sent.

    python bench/bodies_server.py --port 0      # first stdout line: "PORT <n>"

Routes (nothing is built ahead: each body comes from a generator, chunk by chunk, so the
server's own memory stays small whatever the size):

    GET /lines.ndjson        NDJSON_LINES lines of JSON (application/x-ndjson)
    GET /export.csv.gz       a CSV file of CSV_BYTES uncompressed bytes, gzip'd as it is sent
                             (application/gzip); CSV_ROWS rows after the header
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import zlib
from collections.abc import Iterator

from aiohttp import web

# BODIES_SCALE=0.01 makes both bodies a hundredth of their size, for a quick try.
SCALE = float(os.environ.get("BODIES_SCALE", "1"))
NDJSON_LINES = int(1_000_000 * SCALE)
CSV_BYTES = int(200 * 1000 * 1000 * SCALE)
LINES_PER_WRITE = 2_000
CITIES = ("amsterdam", "berlin", "copenhagen", "dublin", "edinburgh")
# Pads each CSV row to ROW_BYTES, so CSV_ROWS rows make CSV_BYTES with the header.
ROW_BYTES = 200
CSV_HEADER = b"id,name,city,amount,updated_at,note\n"
CSV_ROWS = (CSV_BYTES - len(CSV_HEADER)) // ROW_BYTES


def ndjson_line(i: int) -> bytes:
    return (
        f'{{"id":{i},"name":"item-{i}","city":"{CITIES[i % 5]}","amount":{i % 997}.5,'
        f'"updated_at":"2026-12-01T00:00:{i % 60:02d}Z"}}\n'
    ).encode()


def csv_row(i: int) -> bytes:
    head = f"{i},item-{i},{CITIES[i % 5]},{i % 997}.5,2026-12-01T00:00:{i % 60:02d}Z,"
    return (head + "x" * (ROW_BYTES - len(head) - 1) + "\n").encode()


def ndjson_chunks() -> Iterator[bytes]:
    for start in range(0, NDJSON_LINES, LINES_PER_WRITE):
        end = min(start + LINES_PER_WRITE, NDJSON_LINES)
        yield b"".join(ndjson_line(i) for i in range(start, end))


def csv_gz_chunks() -> Iterator[bytes]:
    # Level 1: the server's CPU is not what is measured, and it shares the 2 cores.
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    yield z.compress(CSV_HEADER)
    for start in range(0, CSV_ROWS, LINES_PER_WRITE):
        rows = b"".join(csv_row(i) for i in range(start, min(start + LINES_PER_WRITE, CSV_ROWS)))
        out = z.compress(rows)
        if out:
            yield out
    yield z.flush()


async def _send(request: web.Request, chunks: Iterator[bytes], ctype: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": ctype})
    await resp.prepare(request)
    for chunk in chunks:
        await resp.write(chunk)  # waits while the client is not reading: backpressure
    await resp.write_eof()
    return resp


async def lines(request: web.Request) -> web.StreamResponse:
    return await _send(request, ndjson_chunks(), "application/x-ndjson")


async def export(request: web.Request) -> web.StreamResponse:
    return await _send(request, csv_gz_chunks(), "application/gzip")


async def main(port: int) -> None:
    app = web.Application()
    app.router.add_get("/lines.ndjson", lines)
    app.router.add_get("/export.csv.gz", export)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert server is not None and server.sockets  # type: ignore[attr-defined]
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[attr-defined]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
    sys.exit(0)
