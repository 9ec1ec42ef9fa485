"""Side effects of a transform's ``call``: undone by its ``compensate`` callable when the
run fails, most recent first, each once; and ``on_failure = "continue"``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import Journal, open_database, run
from podium.pipeline import Check, Fetch, Pipeline, Store, Transform

pytestmark = pytest.mark.anyio


class Tickets:
    """A ticket system the call writes to (an in-memory ledger, as a real one would be
    an API the callable reaches with its own client)."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}
        self.log: list[str] = []
        self.fail_undo_once: set[int] = {2}

    def create(self, record: dict[str, Any]) -> dict[str, Any]:
        ticket = 100 + record["id"]
        if record.get("boom"):
            raise RuntimeError(f"ticket system refused item {record['id']}")
        self.open[ticket] = record["name"]
        self.log.append(f"create {ticket}")
        return {**record, "ticket": ticket}

    async def close(self, record: dict[str, Any], result: list[dict[str, Any]]) -> None:
        ticket = result[0]["ticket"]
        if record["id"] in self.fail_undo_once:
            self.fail_undo_once.discard(record["id"])
            raise ConnectionError("ticket system busy")  # retried, then it works
        del self.open[ticket]
        self.log.append(f"close {ticket}")


async def _api(serve: Any, items: list[dict[str, Any]]) -> str:
    async def handler(_request: web.Request) -> web.Response:
        return web.json_response(items)

    app = web.Application()
    app.router.add_get("/items", handler)
    base: str = await serve(app)
    return base


async def test_a_failed_run_closes_the_tickets_its_calls_opened(tmp_path: Path, serve) -> None:
    items = [{"id": i, "name": f"item-{i}", "ok": i != 3} for i in range(1, 5)]
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=await _api(serve, items)))
    tickets = Tickets()
    pipeline = Pipeline(
        name="tickets",
        stages=[
            Fetch(name="items", connector="api", path="/items"),
            Transform(name="open", call=tickets.create, compensate=tickets.close),
            Check(name="all_ok", expect="ok"),  # item 3 fails it: the run fails
            Store(name="save", table="tickets", key=["id"]),
        ],
    )
    database = f"sqlite:///{tmp_path / 'p.db'}"
    result = await run(pipeline, [api], database=database)
    assert result.status == "failed"
    assert tickets.open == {}
    assert tickets.log == [
        "create 101", "create 102", "create 103", "create 104",
        "close 104", "close 103", "close 102", "close 101",
    ]  # fmt: skip
    async with open_database(database) as db:
        steps = await Journal(db).steps(result.run.id)
    assert [s.status for s in steps] == ["compensated"] * 4
    assert [s.compensation["record"]["id"] for s in steps] == [1, 2, 3, 4]
    assert next(s for s in steps if s.compensation["record"]["id"] == 2).attempts == 2
    assert "4 side effect(s) undone" in (result.run.error or "")


async def test_on_failure_continue_rejects_the_record_and_goes_on(tmp_path: Path, serve) -> None:
    items = [{"id": i, "name": f"item-{i}", "boom": i == 2} for i in range(1, 4)]
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=await _api(serve, items)))
    tickets = Tickets()
    pipeline = Pipeline(
        name="tickets",
        stages=[
            Fetch(name="items", connector="api", path="/items"),
            Transform(name="open", call=tickets.create, on_failure="continue"),
            Store(name="save", table="tickets", key=["id"]),
        ],
    )
    database = f"sqlite:///{tmp_path / 'p.db'}"
    result = await run(pipeline, [api], database=database)
    assert result.status == "partial" and result.run.stored == 2 and result.run.rejected == 1
    [letter] = result.dead_letters
    assert letter.kind == "record" and "refused item 2" in letter.cause
    assert sorted(tickets.open) == [101, 103]


def test_compensate_needs_a_call_per_record() -> None:
    with pytest.raises(ValueError, match="go with 'call'"):
        Transform(name="t", compute={"x": "y"}, compensate=print)
    with pytest.raises(ValueError, match='per = "record"'):
        Transform(name="t", call=print, per="batch", compensate=print)
