"""Integers past 64 bits, as some APIs send them: kept exact, or refused in one line.

orjson reads an integer beyond 64 bits as a float, so a stored value would silently not be
the server's; SQLite holds 64-bit integers, and its driver raised an OverflowError that
ended the run with a traceback. Against a real server and a real SQLite file.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector
from podium.connectors._formats import NdjsonDecoder
from podium.connectors._json import loads
from podium.orchestrator import run
from podium.pipeline import Fetch, Pipeline, Store, Transform

pytestmark = pytest.mark.anyio
PODIUM = str(Path(sys.executable).with_name("podium"))
HUGE = 123456789012345678901234567890  # past 2**64: orjson alone gives 1.2345678901234568e+29
PAST_INT64 = 2**64 - 1  # orjson reads it exactly; SQLite cannot hold it


def test_json_keeps_integers_of_any_size() -> None:
    assert loads(b'{"n": 123456789012345678901234567890}') == {"n": HUGE}
    assert loads(b'{"n": 18446744073709551615, "s": "x"}') == {"n": PAST_INT64, "s": "x"}
    assert loads(b'{"id": "12345678901234567890123", "v": 1.5}') == {
        "id": "12345678901234567890123",
        "v": 1.5,
    }
    decoder = NdjsonDecoder(None)
    lines = b'{"id": 1}\n{"id": 2, "n": 123456789012345678901234567890}\n'
    assert decoder.feed(lines[:20]) + decoder.feed(lines[20:]) + decoder.close() == [
        {"id": 1},
        {"id": 2, "n": HUGE},
    ]


def big_app(value: int) -> web.Application:
    async def items(request: web.Request) -> web.Response:
        body = f'[{{"id": 1, "n": 5}}, {{"id": 2, "n": {value}}}]'
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/items", items)
    return app


async def test_a_huge_integer_coerced_to_text_is_stored_exactly(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=await serve(big_app(HUGE))))
    pipeline = Pipeline(
        name="big",
        stages=[
            Fetch(name="get", connector="api", path="/items"),
            Transform(name="text", coerce={"n": "str"}),
            Store(name="save", table="items", key=["id"]),
        ],
    )
    result = await run(pipeline, [api], database=sqlite_url)
    assert result.status == "ok", result.run.error
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        assert db.execute("select id, n from items order by id").fetchall() == [
            (1, "5"),
            (2, str(HUGE)),
        ]


@pytest.mark.parametrize("value", [PAST_INT64, HUGE], ids=["2**64-1", "30 digits"])
async def test_an_integer_sqlite_cannot_hold_is_one_line_naming_the_field(
    serve: Callable[..., Any], tmp_path: Path, value: int
) -> None:
    base = await serve(big_app(value))
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "p.db"}"

[connectors.api]
kind = "http"
base_url = "{base}"

[pipelines.big]
[[pipelines.big.stages]]
name = "get"
kind = "fetch"
connector = "api"
path = "/items"

[[pipelines.big.stages]]
name = "save"
kind = "store"
table = "items"
key = ["id"]
""",
        encoding="utf-8",
    )
    done = await anyio.run_process(
        [PODIUM, "run", "big", "--config", str(config)], cwd=tmp_path, check=False
    )
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 1, out
    assert "Traceback" not in out
    text = " ".join(out.split())  # the summary wraps long lines to the terminal's width
    assert text.count("error:") == 1, out
    assert f"field 'n' holds {value}, larger than the database's 64-bit integers" in text
    assert 'coerce = { n = "str" }' in text
