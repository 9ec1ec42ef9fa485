"""A local API that answers the same records in every body format the formats tests read."""

from __future__ import annotations

import asyncio
import gzip
import io
import zlib
from collections.abc import Callable, Iterable

import orjson
from aiohttp import web

ROWS = [{"id": str(i), "name": f"n{i}", "city": ["ams", "ber", "cph"][i % 3]} for i in range(50)]
# Written in pieces this small, every body crosses many chunks (and splits lines).
PIECE = 97


def ndjson(rows: Iterable[dict[str, str]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def csv_text(rows: list[dict[str, str]], delimiter: str = ",") -> bytes:
    head = delimiter.join(rows[0])
    lines = [delimiter.join(r.values()) for r in rows]
    return ("\n".join([head, *lines]) + "\n").encode()


def xml_text(rows: list[dict[str, str]]) -> bytes:
    items = "".join(
        f'<item id="{r["id"]}"><name>{r["name"]}</name><city>{r["city"]}</city></item>'
        for r in rows
    )
    return f'<?xml version="1.0"?><feed><title>all</title>{items}</feed>'.encode()


def gzipped(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as f:
        f.write(data)
    return out.getvalue()


async def _pieces(request: web.Request, body: bytes, headers: dict[str, str]) -> web.StreamResponse:
    resp = web.StreamResponse(headers=headers)
    await resp.prepare(request)
    for start in range(0, len(body), PIECE):
        await resp.write(body[start : start + PIECE])
    await resp.write_eof()
    return resp


def formats_app(*, gate: asyncio.Event | None = None) -> web.Application:
    """Every route answers ``ROWS`` (or breaks on purpose, for the bad-body tests).

    ``gate``: ``/slow.ndjson`` sends its first 3000 lines, then waits for it before the rest.
    """
    app = web.Application()

    def route(path: str, body: Callable[[], bytes], content_type: str, **extra: str) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await _pieces(request, body(), {"Content-Type": content_type, **extra})

        app.router.add_get(path, handler)

    route("/items.json", lambda: orjson.dumps(ROWS), "application/json")
    route("/items.ndjson", lambda: ndjson(ROWS), "application/x-ndjson")
    route("/items.csv", lambda: csv_text(ROWS), "text/csv; charset=utf-8")
    route("/items.xml", lambda: xml_text(ROWS), "application/xml")
    # No telling suffix: only the Content-Type says what the body is.
    for kind, body, ctype in [
        ("json", lambda: orjson.dumps(ROWS), "application/json; charset=utf-8"),
        ("ndjson", lambda: ndjson(ROWS), "application/jsonl"),
        ("csv", lambda: csv_text(ROWS), "text/csv"),
        ("xml", lambda: xml_text(ROWS), "text/xml; charset=utf-8"),
    ]:
        route(f"/typed/{kind}", body, ctype)
    # No Content-Type: the suffix decides.
    route("/export/items.jsonl", lambda: ndjson(ROWS), "application/octet-stream")
    # gzip as a Content-Encoding (the client undoes it) and as the payload (a .gz file).
    route(
        "/encoded.csv",
        lambda: gzipped(csv_text(ROWS)),
        "text/csv",
        **{"Content-Encoding": "gzip"},
    )
    route(
        "/deflated.ndjson",
        lambda: zlib.compress(ndjson(ROWS)),
        "application/x-ndjson",
        **{"Content-Encoding": "deflate"},
    )
    route("/download/items.csv.gz", lambda: gzipped(csv_text(ROWS)), "application/octet-stream")
    route("/download/items", lambda: gzipped(ndjson(ROWS)), "application/gzip")
    route("/download/items.json.gz", lambda: gzipped(orjson.dumps(ROWS)), "application/json")
    route("/semicolons.csv", lambda: csv_text(ROWS, ";"), "text/csv")

    # Broken bodies: the first three records are good, the line after them is not.
    route(
        "/bad.ndjson",
        lambda: ndjson(ROWS[:3]) + b'{"id": "x",\n' + ndjson(ROWS[3:]),
        "application/x-ndjson",
    )
    route(
        "/bad.csv",
        lambda: csv_text(ROWS[:3]) + b"9,too,many,fields\n" + csv_text(ROWS[3:]).split(b"\n", 1)[1],
        "text/csv",
    )
    route(
        "/bad.xml",
        lambda: xml_text(ROWS[:3])[: -len("</feed>")] + b"\n\n<item><oops></item>",
        "application/xml",
    )

    async def slow(request: web.Request) -> web.StreamResponse:
        lines = ndjson({"id": str(i), "name": f"n{i}"} for i in range(6000))
        half = lines.split(b"\n")
        first, rest = b"\n".join(half[:3000]) + b"\n", b"\n".join(half[3000:])
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        await resp.write(first)
        if gate is not None:
            await gate.wait()
        await resp.write(rest)
        await resp.write_eof()
        return resp

    app.router.add_get("/slow.ndjson", slow)

    async def cut(request: web.Request) -> web.StreamResponse:
        # Chunked, and the connection dropped after three records: no proper end.
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        await resp.write(ndjson(ROWS[:3]) + b'{"id": "3", "na')
        assert request.transport is not None
        request.transport.close()
        return resp

    app.router.add_get("/cut.ndjson", cut)
    return app
