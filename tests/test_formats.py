"""Every body format against a real local server: exactly the server's records are stored.

Each case runs a real pipeline (fetch → store into SQLite). The server writes its bodies
in 97-byte pieces, so every body crosses many chunks and lines are split between them:
a decoder that lost the unfinished line between chunks would lose records here.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import run
from podium.orchestrator.http import play_from, record_to
from podium.pipeline import CsvOptions, Fetch, MalformedBody, Pipeline, PipelineError, Store

from .config_helpers import one_line_error
from .format_servers import ROWS, formats_app

pytestmark = pytest.mark.anyio

EXPECTED = sorted((r["id"], r["name"], r["city"]) for r in ROWS)


def pipeline(path: str, *, key: str = "id", **fetch: Any) -> Pipeline:
    return Pipeline(
        name="formats",
        stages=[
            Fetch(name="items", connector="api", path=path, **fetch),
            Store(name="save", table="items", key=[key], batch_size=500),
        ],
    )


def stored(sqlite_url: str, columns: str = "id, name, city") -> list[tuple[Any, ...]]:
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        return sorted(db.execute(f"select {columns} from items"))


async def run_formats(
    serve: Callable[..., Any], sqlite_url: str, path: str, *, connector_format: str = "json",
    key: str = "id", **fetch: Any,
) -> Any:  # fmt: skip
    base = await serve(formats_app())
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base, format=connector_format))
    return await run(pipeline(path, key=key, **fetch), [api], database=sqlite_url)


@pytest.mark.parametrize(
    ("path", "body_format"),
    [
        ("/items.json", "json"),
        ("/items.ndjson", "ndjson"),
        ("/items.csv", "csv"),
        ("/items.xml", "xml"),
        ("/encoded.csv", "csv"),  # Content-Encoding: gzip, undone by the client
        ("/deflated.ndjson", "ndjson"),  # Content-Encoding: deflate, likewise
        ("/download/items.csv.gz", "csv"),  # a .gz file: the payload is decompressed
        ("/download/items", "ndjson"),  # Content-Type application/gzip
        ("/download/items.json.gz", "json"),  # a JSON document in a .gz file
    ],
)
async def test_each_format_stores_exactly_the_servers_records(
    path: str, body_format: str, serve: Callable[..., Any], sqlite_url: str
) -> None:
    # XML records carry the id as an attribute (``@id``, as xmltodict names it).
    fetch: dict[str, Any] = {"format": body_format}
    key = "id"
    if body_format == "xml":
        fetch["records"] = "feed.item"
        key = "@id"
    result = await run_formats(serve, sqlite_url, path, key=key, **fetch)
    assert result.status == "ok", result.run.error
    assert stored(sqlite_url, f'"{key}", name, city') == EXPECTED
    assert result.run.stored == len(ROWS)


@pytest.mark.parametrize(
    "path", ["/typed/json", "/typed/ndjson", "/typed/csv", "/typed/xml", "/export/items.jsonl"]
)
async def test_auto_chooses_by_content_type_then_suffix(
    path: str, serve: Callable[..., Any], sqlite_url: str
) -> None:
    """The connector says ``auto``; nothing in the fetch names a format."""
    xml = path.endswith("xml")
    key = "@id" if xml else "id"
    records = "feed.item" if xml else None  # the feed's <title> is no record
    result = await run_formats(
        serve, sqlite_url, path, connector_format="auto", key=key, records=records
    )
    assert result.status == "ok", result.run.error
    assert stored(sqlite_url, f'"{key}", name, city') == EXPECTED


async def test_csv_options_delimiter(serve: Callable[..., Any], sqlite_url: str) -> None:
    result = await run_formats(
        serve, sqlite_url, "/semicolons.csv", format="csv", csv=CsvOptions(delimiter=";")
    )
    assert result.status == "ok", result.run.error
    assert stored(sqlite_url) == EXPECTED


async def test_csv_without_header_names_columns(serve: Callable[..., Any], sqlite_url: str) -> None:
    """``header = false``: the header line is a data row too (and has no numeric id)."""
    options = CsvOptions(header=False, columns=("id", "name", "city"))
    result = await run_formats(serve, sqlite_url, "/items.csv", format="csv", csv=options)
    assert result.status == "ok", result.run.error
    assert stored(sqlite_url) == sorted([*EXPECTED, ("id", "name", "city")])


@pytest.mark.parametrize(
    ("path", "body_format", "line", "records"),
    [
        ("/bad.ndjson", "ndjson", 4, None),
        ("/bad.csv", "csv", 5, None),  # the header is line 1
        ("/bad.xml", "xml", 3, "feed.item"),
    ],
)
async def test_a_bad_line_is_a_named_error_with_its_line_and_earlier_records_stay(
    path: str,
    body_format: str,
    line: int,
    records: str | None,
    serve: Callable[..., Any],
    sqlite_url: str,
) -> None:
    key = "@id" if body_format == "xml" else "id"
    result = await run_formats(
        serve, sqlite_url, path, format=body_format, records=records, key=key
    )
    # One request of one failed: beyond the default max_failed_ratio, the run failed —
    # and its rows from before the bad line are stored.
    assert result.status == "failed"
    (event,) = [e for e in result.events if e.kind == "bad_response"]
    assert f"{body_format} line {line}:" in event.message
    assert path in event.message
    assert f"line {line}" in (result.run.error or "")
    (letter,) = result.dead_letters
    assert letter.stage == "items" and f"line {line}" in letter.cause
    assert [r[0] for r in stored(sqlite_url, f'"{key}"')] == ["0", "1", "2"]


async def test_the_decoders_error_is_malformed_body_with_the_line() -> None:
    from podium.connectors._formats import NdjsonDecoder

    decoder = NdjsonDecoder()
    assert decoder.feed(b'{"a": 1}\n\n{"a": 2}\n{"a"') == [{"a": 1}, {"a": 2}]
    with pytest.raises(MalformedBody) as caught:
        decoder.feed(b": 3}\n[1,\n")
        decoder.close()
    assert caught.value.line == 5 and caught.value.format == "ndjson"


async def test_csv_text_that_is_not_the_encoding_names_its_line() -> None:
    """A character split between chunks is still one character; a byte that is no text
    ends the body at its line, after the rows before it. A UTF-8 byte-order mark is no
    part of the first column's name."""
    from podium.connectors._formats import CsvDecoder

    decoder = CsvDecoder(CsvOptions())
    assert decoder.feed(b"\xef\xbb\xbfid,n\n1,a\n2,\xc3") == [{"id": "1", "n": "a"}]
    assert decoder.feed(b"\xa9\n3,\xff\n4,x\n") == [{"id": "2", "n": "é"}]
    with pytest.raises(MalformedBody, match=r"csv line 4: not utf-8 text") as caught:
        decoder.close()
    assert caught.value.line == 4


async def test_a_connection_lost_mid_body_keeps_the_records_before_it(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    result = await run_formats(serve, sqlite_url, "/cut.ndjson", format="ndjson")
    assert result.status == "failed"
    (event,) = [e for e in result.events if e.kind == "request_failed"]
    assert "/cut.ndjson" in event.message and "while reading the body" in event.message
    assert [r[0] for r in stored(sqlite_url, "id")] == ["0", "1", "2"]


async def test_records_reach_the_store_before_the_body_ends(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """The server sends 3000 lines and waits: it goes on only once the store holds rows.
    A body read whole would never let any reach the store — the deadline would fail it."""
    gate = asyncio.Event()
    base = await serve(formats_app(gate=gate))
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))
    results: list[Any] = []
    early = 0

    async def go() -> None:
        results.append(
            await run(pipeline("/slow.ndjson", format="ndjson"), [api], database=sqlite_url)
        )

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(go)
            while not early:
                await anyio.sleep(0.05)
                with contextlib.suppress(sqlite3.OperationalError):  # no table yet
                    early = len(stored(sqlite_url, "id"))
            gate.set()
    assert 0 < early <= 3000
    assert results[0].status == "ok", results[0].run.error
    assert len(stored(sqlite_url, "id")) == 6000


async def test_a_streamed_request_is_retried_on_503_before_its_body(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """The status decides before the body is read: a 503 is read whole and retried, and
    the 200 after it streams."""
    from aiohttp import web

    from .format_servers import csv_text

    calls = 0
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=503, text="busy", headers={"Retry-After": "0"})
        return web.Response(body=csv_text(ROWS), content_type="text/csv")

    app.router.add_get("/flaky.csv", handler)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base, format="csv"))
    result = await run(pipeline("/flaky.csv"), [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert calls == 2
    assert stored(sqlite_url) == EXPECTED


async def test_xml_entities_are_never_expanded(serve: Callable[..., Any], sqlite_url: str) -> None:
    """Billion laughs and XXE: the entities stay unexpanded, no file is read."""
    from aiohttp import web

    secret = Path(sqlite_url.removeprefix("sqlite:///")).parent / "secret.txt"
    secret.write_text("TOPSECRET")
    doc = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
        f'<!ENTITY x SYSTEM "file://{secret}">]>'
        "<r><item><id>1</id><v>&c;</v></item><item><id>2</id><v>&x;</v></item></r>"
    )
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=doc.encode(), content_type="application/xml")

    app.router.add_get("/evil.xml", handler)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base, format="xml"))
    pipe = Pipeline(
        name="formats",
        stages=[
            Fetch(name="items", connector="api", path="/evil.xml"),
            Store(name="save", table="items", key=["id"]),
        ],
    )
    result = await run(pipe, [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        rows = sorted(db.execute("select id, v from items"))
    assert rows == [("1", None), ("2", None)]


async def test_record_then_replay_a_streamed_csv(
    serve: Callable[..., Any], sqlite_url: str, tmp_path: Path
) -> None:
    """Recording keeps the streamed body whole; the replay feeds it to the same decoder."""
    base = await serve(formats_app())
    connectors = {"api": HttpConnector("api", ConnectorConfig(kind="http", base_url=base))}
    pipe = pipeline("/download/items.csv.gz", format="csv")
    recorded = await run(pipe, connectors, database=sqlite_url,
                         transport=record_to(tmp_path / "tapes", connectors))  # fmt: skip
    assert recorded.status == "ok", recorded.run.error
    first = stored(sqlite_url)
    replay_db = f"sqlite:///{tmp_path / 'replay.db'}"
    replayed = await run(pipe, connectors, database=replay_db,
                         transport=play_from(tmp_path / "tapes", connectors))  # fmt: skip
    assert replayed.status == "ok", replayed.run.error
    assert first == stored(replay_db) == EXPECTED


async def test_paginated_csv_reads_each_page_whole(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """A paginated fetch of a streamed format: each page read whole by the same decoder."""
    from aiohttp import web

    from .format_servers import csv_text

    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        offset, limit = int(request.query["offset"]), int(request.query["limit"])
        page = ROWS[offset : offset + limit]
        body = csv_text(page) if page else b"id,name,city\n"
        return web.Response(body=body, content_type="text/csv")

    app.router.add_get("/paged.csv", handler)
    base = await serve(app)
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base, format="csv"))
    pipe = pipeline("/paged.csv", paginate={"type": "offset", "limit": 20})
    result = await run(pipe, [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert stored(sqlite_url) == EXPECTED


@pytest.mark.parametrize(
    ("fetch", "message"),
    [
        ({"format": "csv", "records": "items"}, "a CSV body's rows are the records"),
        ({"format": "xml", "records": "feed[0].item"}, "an XML records path is element names"),
    ],
)
async def test_records_that_cannot_apply_are_refused_at_load(
    fetch: dict[str, Any], message: str
) -> None:
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url="http://127.0.0.1:9"))
    with pytest.raises(PipelineError, match=message):
        api.check_fetch(Fetch(name="items", connector="api", path="/x", **fetch))


@pytest.mark.parametrize(
    ("connector", "fetch", "expected"),
    [
        ("", 'format = "yaml"', "stages[0].format: Input should be 'json', 'ndjson', 'csv'"),
        ('format = "tsv"', "", "connectors.api.format: Input should be 'json', 'ndjson'"),
        ("", 'csv = { delimiter = ";;" }', "stages[0].csv.delimiter: String should have at most"),
        ("", "csv = { header = false }", "header = false needs columns = [...]"),
        ('csv = { encoding = "utf-9" }', "", "connectors.api.csv.encoding: unknown encoding"),
        ('format = "csv"', 'records = "items"', "a CSV body's rows are the records"),
        ("", 'format = "xml"\nrecords = "a[0]"', "an XML records path is element names"),
    ],
)
def test_bad_format_config_is_one_line(
    tmp_path: Path, connector: str, fetch: str, expected: str
) -> None:
    line = one_line_error(tmp_path, connector_extra=connector, fetch_extra=fetch)
    assert expected in line, line


async def test_a_response_rule_ignores_a_streamed_fetchs_answer(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """An ignored answer ends the item with no records, and the run is ok."""
    base = await serve(formats_app())
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base, format="csv"))
    pipe = Pipeline(
        name="formats",
        stages=[
            Fetch(
                name="items",
                connector="api",
                path="/gone.csv",
                rules=[{"when": [404], "action": "ignore"}],
            ),
            Fetch(name="more", connector="api", path="/items.csv"),
            Store(name="save", table="items", key=["id"], **{"from": ["items", "more"]}),
        ],
    )
    result = await run(pipe, [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert result.stats.stages["items"].ignored == 1
    assert stored(sqlite_url) == EXPECTED


async def test_a_rule_on_the_body_sees_a_csv_endpoints_busy_answer_and_retries(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    """An export endpoint that answers 200 with a JSON "busy" instead of its CSV: the body
    rule reads the answer whole, retries, and only the real CSV's records are stored."""
    from aiohttp import web

    from .format_servers import csv_text

    asked: list[int] = []

    async def export(request: web.Request) -> web.Response:
        asked.append(1)
        if len(asked) < 3:
            return web.json_response({"error": "busy"})
        return web.Response(body=csv_text(ROWS), content_type="text/csv")

    app = web.Application()
    app.router.add_get("/export.csv", export)
    base = await serve(app)
    config = ConnectorConfig(
        kind="http", base_url=base, format="csv", retry={"attempts": 4, "backoff": 0.01}
    )
    api = HttpConnector("api", config)
    rules = [{"when": "body.error == 'busy'", "action": "retry"}]
    assert not api.streams(Fetch(name="items", connector="api", path="/x", rules=rules))
    assert api.streams(Fetch(name="items", connector="api", path="/x", rules=[]))
    result = await run(pipeline("/export.csv", rules=rules), [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    assert len(asked) == 3 and (result.run.requests, result.run.retries) == (3, 2)
    assert stored(sqlite_url) == EXPECTED
