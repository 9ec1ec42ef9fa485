"""Side effects undone when a run fails; dead letters sent again; triggers sent twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from aiohttp import web
from typer.testing import CliRunner

from podium.cli import app as cli
from podium.connectors import ConnectorConfig, HttpConnector, RetryPolicy
from podium.orchestrator import Journal, open_database, run, run_pipeline
from podium.pipeline import DuplicateTrigger, Fetch, Pipeline, RunPolicy, Store

pytestmark = pytest.mark.anyio


async def podium(*args: str) -> Any:
    """The CLI in-process, on a worker thread: it runs an event loop of its own, while
    the test's loop goes on serving the API."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args)))


class SideEffects:
    """Tickets, messages and records, an API that honours Idempotency-Key: the same key
    gets the same answer and changes nothing twice."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.alive: set[str] = set()
        self.effects: Counter[str] = Counter()  # what really changed, per resource
        self.answers: dict[str, Any] = {}
        self.keys: dict[str, list[str]] = {}  # key → every request that sent it
        self.refuse_next_delete_of: set[str] = {"M1"}  # one compensation fails, then works

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/tickets", self.create("T"))
        app.router.add_post("/messages", self.create("M"))
        app.router.add_delete("/tickets/{id}", self.delete)
        app.router.add_delete("/messages/{id}", self.delete)
        app.router.add_patch("/records/{n}", self.patch)
        return app

    def create(self, prefix: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            key = request.headers.get("Idempotency-Key", "")
            self.log.append(f"POST {request.path}")
            self.keys.setdefault(key, []).append(f"POST {request.path}")
            if key in self.answers:
                return web.json_response(self.answers[key])
            new = f"{prefix}{len([a for a in self.alive if a[0] == prefix]) + 1}"
            self.alive.add(new)
            self.effects[f"create {new}"] += 1
            self.answers[key] = {"id": new, "body": await request.json()}
            return web.json_response(self.answers[key])

        return handler

    async def delete(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        thing = request.match_info["id"]
        self.log.append(f"DELETE {request.path}")
        self.keys.setdefault(key, []).append(f"DELETE {request.path}")
        if thing in self.refuse_next_delete_of:
            self.refuse_next_delete_of.discard(thing)
            return web.json_response({"error": "try again"}, status=503)
        if key not in self.answers:
            self.answers[key] = {"deleted": thing}
            self.alive.discard(thing)
            self.effects[f"delete {thing}"] += 1
        return web.json_response(self.answers[key])

    async def patch(self, request: web.Request) -> web.Response:
        self.log.append(f"PATCH {request.path}")
        return web.json_response({"error": "records are read-only today"}, status=500)


def saga_pipeline() -> Pipeline:
    return Pipeline(
        name="escalate",
        stages=[
            Fetch(
                name="ticket",
                connector="api",
                method="POST",
                path="/tickets",
                body={"title": "disk full"},
                compensate={"method": "DELETE", "path": "/tickets/{response.id}"},
            ),
            Fetch(
                name="message",
                connector="api",
                method="POST",
                path="/messages",
                body={"ticket": "{id}"},
                compensate={"method": "DELETE", "path": "/messages/{response.id}"},
                **{"from": "ticket"},
            ),
            Fetch(
                name="mark",
                connector="api",
                method="PATCH",
                path="/records/1",
                **{"from": "message"},
            ),
        ],
    )


async def test_a_failed_third_step_undoes_the_first_two_in_reverse_order_exactly_once(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    server = SideEffects()
    api = HttpConnector(
        "api",
        ConnectorConfig(
            kind="http",
            base_url=await serve(server.app()),
            retry=RetryPolicy(attempts=3, backoff=0, statuses=frozenset({500, 503})),
        ),
    )
    result = await run(saga_pipeline(), [api], database=sqlite_url)

    assert result.status == "failed"
    assert server.log == [
        "POST /tickets",
        "POST /messages",
        "PATCH /records/1", "PATCH /records/1", "PATCH /records/1",  # its retries, then it fails
        "DELETE /messages/M1", "DELETE /messages/M1",  # undone last-first; retried once
        "DELETE /tickets/T1",
    ]  # fmt: skip
    assert server.alive == set()
    assert server.effects == Counter(
        {"create T1": 1, "create M1": 1, "delete M1": 1, "delete T1": 1}
    )
    # Every request of one step, and of one compensation, carried one key of its own.
    by_request = {tuple(requests): key for key, requests in server.keys.items()}
    assert len(by_request) == 4 and all(key.startswith("podium-") for key in server.keys)
    assert "2 side effect(s) undone" in (result.run.error or "")

    async with open_database(sqlite_url) as db:
        steps = await Journal(db).steps(result.run.id)
    assert [(s.stage, s.status, s.compensation["path"]) for s in steps] == [
        ("ticket", "compensated", "/tickets/T1"),
        ("message", "compensated", "/messages/M1"),
    ]
    assert [s.attempts for s in steps] == [1, 2]
    kinds = [e.kind for e in result.events]
    assert kinds.count("compensated") == 2 and "request_failed" in kinds

    shown = await podium("show", result.run.id[:8], "--config", str(_config(sqlite_url)))
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "side effects (2)" in text and "undone" in text and "DELETE /tickets/T1" in text


def _config(sqlite_url: str) -> Path:
    path = Path(sqlite_url.removeprefix("sqlite:///")).with_name("config.toml")
    path.write_text(f'[database]\nurl = "{sqlite_url}"\n', encoding="utf-8")
    return path


def flaky_items() -> tuple[web.Application, dict[str, Any]]:
    state: dict[str, Any] = {"broken": set(range(7)), "hits": Counter()}
    app = web.Application()

    async def item(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        state["hits"][n] += 1
        if n in state["broken"]:
            return web.json_response({"error": "not yet"}, status=404)
        return web.json_response({"id": n, "double": n * 2})

    app.router.add_get("/item/{n}", item)
    return app, state


async def test_replay_sends_exactly_the_dead_lettered_requests(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    app, state = flaky_items()
    base = await serve(app)
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "p.db"}"

[connectors.api]
kind = "http"
base_url = "{base}"

[pipelines.items]
policy = {{ max_failed_ratio = 0.9 }}
[[pipelines.items.stages]]
name = "items"
kind = "fetch"
connector = "api"
for_each = {{ range = [0, 10] }}
path = "/item/{{value}}"

[[pipelines.items.stages]]
name = "save"
kind = "store"
table = "items"
key = ["id"]
""",
        encoding="utf-8",
    )
    first = await podium("run", "items", "--config", str(config), "--json")
    assert first.exit_code == 0, first.output
    summary = orjson.loads(first.stdout)
    assert summary["status"] == "partial" and summary["failed_requests"] == 7

    run_id = summary["run_id"][:8]
    listed = await podium("dead-letters", run_id, "--config", str(config), "--json")
    letters = orjson.loads(listed.stdout)
    assert sorted(d["item"] for d in letters) == [f"#{n}" for n in range(7)]
    assert all(d["kind"] == "request" and d["status"] == 404 for d in letters)
    assert {d["binding"]["value"] for d in letters} == set(range(7))

    state["broken"].clear()  # the API is fixed
    hits_before = sum(state["hits"].values())
    replayed = await podium("replay", run_id, "--config", str(config), "--json")
    assert replayed.exit_code == 0, replayed.output
    replay = orjson.loads(replayed.stdout)
    assert sum(state["hits"].values()) - hits_before == 7  # exactly those requests
    assert replay["status"] == "ok" and replay["stored"] == 7

    again = await podium("dead-letters", run_id, "--config", str(config), "--json")
    assert {d["replayed_in"] for d in orjson.loads(again.stdout)} == {replay["run_id"]}
    nothing_left = await podium("replay", run_id, "--config", str(config))
    assert nothing_left.exit_code == 2 and "no dead-lettered requests left" in nothing_left.stderr
    runs = orjson.loads((await podium("runs", "--config", str(config), "--json")).stdout)
    assert (runs[0]["trigger"], runs[0]["replay_of"]) == ("replay", summary["run_id"])


async def test_the_same_idempotency_key_never_starts_a_second_run(
    serve: Callable[..., Any], sqlite_url: str
) -> None:
    app, _state = flaky_items()
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=await serve(app)))
    pipeline = Pipeline(
        name="once",
        policy=RunPolicy(max_failed_ratio=1),
        stages=[
            Fetch(name="one", connector="api", path="/item/9"),
            Store(name="save", table="once", key="id"),
        ],
    )
    async with open_database(sqlite_url) as db:
        first = await run_pipeline(
            pipeline, connectors={"api": api}, database=db, idempotency_key="deploy-42"
        )
        with pytest.raises(DuplicateTrigger) as refused:
            await run_pipeline(
                pipeline, connectors={"api": api}, database=db, idempotency_key="deploy-42"
            )
        other = await run_pipeline(
            pipeline, connectors={"api": api}, database=db, idempotency_key="deploy-43"
        )
        runs = await Journal(db).runs("once")
    assert refused.value.run_id == first.run.id
    assert f"already started run {first.run.id}" in refused.value.message
    assert {r.id for r in runs} == {first.run.id, other.run.id}
