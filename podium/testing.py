"""Test helpers for pipelines and connector plugins: no network, real engine.

``MockTransport`` replaces the HTTP transport (as httpx's ``MockTransport`` does): every
request goes to a function in memory and no socket is opened, while everything else —
auth flows, pagination, retries, checks, the store and the journal — runs for real::

    from podium.testing import FakeConnector, reply, run

    api = FakeConnector("api", {
        "GET /items": {"items": [{"id": 1}, {"id": 2}]},
        "GET /broken": reply(503, json={"error": "busy"}),
    })
    result = await run(pipeline, [api], database=podium_database)
    assert api.calls == ["GET /items"]

``PlaybackTransport`` serves a run from a cassette instead — the exchanges ``podium run
P --record DIR`` (or a ``RecordingTransport``) wrote down from the real API, secrets
masked — and a request the cassette does not hold fails the run::

    transport = PlaybackTransport("tests/cassettes/api.yaml")
    result = await run(pipeline, [api_connector], database=podium_database, transport=transport)

With pytest, the ``podium_database`` fixture (``from podium.testing import
podium_database`` in a ``conftest.py``) is a SQLite URL in the test's temporary folder,
and ``stored_rows`` reads back what a run stored.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from podium.connectors import Connector, ConnectorConfig, HttpConnector, Request
from podium.orchestrator import RunResult
from podium.orchestrator import run as _run
from podium.orchestrator.http import (
    MockReply,
    MockTransport,
    PlaybackTransport,
    RecordingTransport,
    Transport,
    play_from,
    record_to,
    reply,
)
from podium.pipeline import Pipeline, Record

if TYPE_CHECKING:
    from collections.abc import Iterator

Route = Any  # JSON (a dict or list), a MockReply, or request -> MockReply (sync or async)

__all__ = [
    "FakeConnector",
    "MockReply",
    "MockTransport",
    "PlaybackTransport",
    "RecordingTransport",
    "play_from",
    "podium_database",
    "record_to",
    "reply",
    "run",
    "stored_rows",
]


class FakeConnector(HttpConnector):
    """An ``http`` connector whose API is a table of routes, served in memory.

    ``routes`` maps ``"METHOD /path"`` to JSON to answer with 200, a ``reply(...)``, or a
    function of the ``Request`` returning one. Paths match without the query string; a
    request no route matches gets a 404. ``calls`` lists ``"METHOD /path"`` of every
    request in order, ``transport.requests`` the requests themselves.
    """

    def __init__(
        self,
        name: str,
        routes: Mapping[str, Route],
        *,
        config: ConnectorConfig | None = None,
        **settings: Any,
    ) -> None:
        if config is None:
            config = ConnectorConfig.model_validate(
                {"kind": "http", "base_url": f"http://{name}.fake", **settings}
            )
        super().__init__(name, config)
        self.routes = {_route_key(key): value for key, value in routes.items()}
        self.calls: list[str] = []
        self.transport = MockTransport(self._answer)

    async def _answer(self, request: Request) -> MockReply:
        key = f"{request.method} {urlsplit(request.url).path or '/'}"
        self.calls.append(key)
        route = self.routes.get(key)
        if route is None:
            return reply(404, json={"error": f"no fake route for {key}"})
        if isinstance(route, MockReply):
            return route
        if callable(route):
            answer = route(request)
            if inspect.isawaitable(answer):
                answer = await answer
            if not isinstance(answer, MockReply):
                raise TypeError(f"fake route {key!r} must return reply(...), got {answer!r}")
            return answer
        return reply(200, json=route)


def _route_key(key: str) -> str:
    method, _, path = key.strip().partition(" ")
    if not path:
        raise ValueError(f"a fake route is 'METHOD /path', got {key!r}")
    return f"{method.upper()} {path.strip()}"


async def run(
    pipeline: Pipeline,
    connectors: Iterable[Connector],
    *,
    database: str,
    transport: Transport | Mapping[str, Transport] | None = None,
    **options: Any,
) -> RunResult:
    """``podium.run`` where every ``FakeConnector`` is served from memory; other
    connectors use ``transport`` (or the network, when none is given)."""
    connectors = list(connectors)
    transports: dict[str, Transport] = {}
    for connector in connectors:
        if isinstance(connector, FakeConnector):
            transports[connector.name] = connector.transport
        elif isinstance(transport, Transport):
            transports[connector.name] = transport
        elif transport is not None and connector.name in transport:
            transports[connector.name] = transport[connector.name]
    return await _run(pipeline, connectors, database=database, transport=transports, **options)


async def stored_rows(database: str, table: str) -> list[Record]:
    """Every row of ``table`` in ``database``, as dicts, in key order."""
    import sqlalchemy as sa

    from podium.orchestrator import open_database

    def read(conn: sa.Connection) -> list[Record]:
        reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
        order = list(reflected.primary_key.columns) or list(reflected.columns)[:1]
        return [dict(r._mapping) for r in conn.execute(sa.select(reflected).order_by(*order))]

    async with open_database(database) as db:
        return await db.run(f"reading table {table!r}", read)


def _fixture() -> Callable[..., Any]:
    try:
        import pytest
    except ImportError:  # pragma: no cover - podium.testing without pytest installed

        def missing(*_args: Any) -> Any:
            raise RuntimeError("the podium_database fixture needs pytest")

        return missing

    @pytest.fixture
    def podium_database(tmp_path: Path) -> Iterator[str]:
        """A SQLite database URL in the test's temporary folder, gone with it."""
        yield f"sqlite:///{tmp_path / 'podium-test.db'}"

    return podium_database


podium_database = _fixture()
