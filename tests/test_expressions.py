"""Expressions with arithmetic and functions — ``expr:`` formulas and podium's JMESPath
functions — in compute and in check conditions, run through a real pipeline; unsafe or
broken expressions are one-line config errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import run
from podium.pipeline import Check, Expr, Fetch, Pipeline, PipelineError, Store, Transform

from .config_helpers import one_line_error

pytestmark = pytest.mark.anyio

ORDERS = [
    {"id": 1, "first": "Ada", "last": "Lovelace", "status": "OPEN", "price": 2.5, "qty": 4,
     "created": "2026-11-30T10:00:00Z"},
    {"id": 2, "first": "Alan", "last": "Turing", "status": "Closed", "price": 10, "qty": 3,
     "created": "2026-11-30T23:30:00+01:00"},
    {"id": 3, "first": "Grace", "last": None, "status": "open", "price": 1, "qty": 2,
     "created": "2026-12-01"},
    {"id": 4, "first": "Edsger", "last": "Dijkstra", "status": "Open", "price": 5, "qty": 5,
     "created": "2999-01-01T00:00:00Z"},  # dated in the future: a clock or data error
]  # fmt: skip


def orders_app() -> web.Application:
    app = web.Application()

    async def orders(request: web.Request) -> web.Response:
        return web.json_response({"orders": ORDERS})

    app.router.add_get("/orders", orders)
    return app


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_compute_and_checks_with_arithmetic_dates_and_functions(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=await serve(orders_app())))
    compute = {
        "double_qty": "expr: qty * 2",
        "total": "expr: price * qty",
        "who": "concat(first, ' ', last)",
        "status_lc": "lower(status)",
        "code": "expr: concat(upper(first[:2]), '-', id * 100)",
        "fetched_at": "now()",
        "stale_after": "expr: now() - duration('2h')",
        "due": "date_add(created, '1d12h')",
        "created_epoch": "epoch(created)",
    }
    pipeline = Pipeline(
        name="orders",
        stages=[
            Fetch(name="get", connector="api", path="/orders", records="orders"),
            Transform(name="shape", compute=compute),
            # Each check drops the orders it fails: 3 is worth 2, 2 is closed, 4 is dated
            # in the future.
            Check(name="big", expect="expr: total > 9", drop=True, severity="warn"),
            Check(name="open", expect="lower(status) == 'open'", drop=True, severity="warn"),
            Check(
                name="dated",
                expect=[
                    "expr: date(created) < now() + duration('1d')",
                    "concat(first, ' ', status) != 'Ada CLOSED'",
                ],
                drop=True,
                severity="warn",
            ),
            Store(name="save", table="orders", key=["id"]),
        ],
    )
    before = datetime.now(UTC)
    result = await run(pipeline, [api], database=sqlite_url)
    after = datetime.now(UTC)
    # A failing warn check leaves the run partial.
    assert result.status == "partial", (result.run.error, [e.message for e in result.events])
    counts = {c.name: (c.passed, c.failed) for c in result.checks}
    assert counts == {"big": (3, 1), "open": (2, 1), "dated": (1, 1)}
    with sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///"))) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("select * from orders order by id")]
    # Only order 1 passes both conditions (2 is closed; 3 is worth 2).
    [row] = rows
    assert row["id"] == 1 and row["double_qty"] == 8 and row["total"] == 10.0
    assert row["who"] == "Ada Lovelace" and row["status_lc"] == "open"
    assert row["code"] == "AD-100"
    fetched = parse(row["fetched_at"])
    assert before - timedelta(seconds=1) <= fetched <= after + timedelta(seconds=1)
    stale = parse(row["stale_after"])
    assert before - timedelta(hours=2, seconds=1) <= stale <= after - timedelta(hours=2)
    assert row["due"] == "2026-12-01T22:00:00Z"
    assert row["created_epoch"] == int(parse("2026-11-30T10:00:00Z").timestamp())


def test_formulas_read_like_jmespath_on_missing_data() -> None:
    """A field that is missing, or operands that do not fit, give null, never a crash."""
    record = {"n": 3, "s": "x", "nested": {"count": 2, "items": [1, 2]}, "none": None}
    cases = {
        "expr: n * 2": 6,
        "expr: nested.count + nested.items[1]": 4,  # .count is the key, not list.count
        "expr: missing * 2": None,
        "expr: s * n": "xxx",
        "expr: n / 0": None,
        "expr: none + 1": None,
        "expr: 'big' if n > 2 else 'small'": "big",
        "expr: to_number('7') // 2": 3,
        "expr: date('2026-12-01') + duration('36h')": "2026-12-02T12:00:00Z",
        "expr: date('2026-12-02T00:00:00Z') - date('2026-12-01T00:00:00Z')": 86400.0,
        "concat(s, `1`, none)": "x1",
        "round(`2.345`, `2`)": 2.35,
        "date_add('2026-12-01T00:00:00Z', '-30m')": "2026-11-30T23:30:00Z",
    }
    for source, expected in cases.items():
        assert Expr(source).search(record) == expected, source


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("expr: __import__('os').system('true')", "may call only now,"),
        ("expr: n.__class__", "'__class__'"),
        ("expr: (lambda: 1)()", "a lambda is not allowed"),
        ("expr: [x for x in items]", "a comprehension is not allowed"),
        ("expr: f'{n}'", "an f-string is not allowed"),
        ("expr: s.upper()", "calls 's.upper'"),
        ("expr: n *", "invalid expression"),
        ("lowr(name)", "unknown function 'lowr' (did you mean 'lower'?)"),
        ("concat()", "concat() takes at least 1"),
        ("value * 2", "for arithmetic, write it as a formula: 'expr: value * 2'"),
    ],
)
def test_unsafe_and_broken_expressions_are_refused_at_load(source: str, words: str) -> None:
    with pytest.raises(PipelineError) as caught:
        Expr(source)
    assert "\n" not in caught.value.message and words in caught.value.message


SHAPE = """
[[pipelines.p.stages]]
name = "shape"
kind = "transform"
compute = {{ {compute} }}
"""


@pytest.mark.parametrize(
    ("compute", "words"),
    [
        ('''x = "expr: __import__('os').getcwd()"''', "may call only"),
        ('x = "expr: value * "', "invalid expression"),
        ('x = "value * 2"', "expr: value * 2"),
    ],
    ids=["unsafe", "broken", "arithmetic as JMESPath"],
)
def test_a_bad_compute_is_one_line_naming_the_stage(
    tmp_path: Path, compute: str, words: str
) -> None:
    line = one_line_error(tmp_path, fetch_extra=SHAPE.format(compute=compute))
    assert "stages[1].compute: x: " in line and words in line, line


def test_a_field_named_like_a_python_keyword_gets_a_way_around() -> None:
    from podium.pipeline import PipelineError
    from podium.pipeline._formula import Formula

    with pytest.raises(PipelineError) as caught:
        Formula("expr: from * 2")
    message = caught.value.message
    assert "'from' is a Python keyword" in message and "compute.from_ = '\"from\"'" in message
    with pytest.raises(PipelineError) as plain:
        Formula("expr: value *")
    assert "keyword" not in plain.value.message  # only when one is there
