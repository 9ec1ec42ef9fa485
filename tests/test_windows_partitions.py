"""Incremental fetches in date windows, with lookback, and one mark per partition."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner

from podium.cli import app as cli
from podium.connectors import ConnectorConfig, HttpConnector
from podium.orchestrator import Journal, open_database, run
from podium.pipeline import Fetch, Pipeline, Store

pytestmark = pytest.mark.anyio


class Events:
    """``/events?start=&end=`` (ISO) and ``/repos/{repo}/issues?since=``: the bounds asked."""

    def __init__(self) -> None:
        self.windows: list[tuple[datetime, datetime]] = []
        self.since: dict[str, list[str | None]] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/events", self.events)
        app.router.add_get("/repos/{repo}/issues", self.issues)
        return app

    async def events(self, request: web.Request) -> web.Response:
        start = datetime.fromisoformat(request.query["start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(request.query["end"].replace("Z", "+00:00"))
        self.windows.append((start, end))
        return web.json_response([{"id": start.isoformat(), "at": start.isoformat()}])

    async def issues(self, request: web.Request) -> web.Response:
        repo = request.match_info["repo"]
        since = request.query.get("since")
        self.since.setdefault(repo, []).append(since)
        number = int(repo.removeprefix("r"))
        # Every repository has its own latest update: item r7 was updated at 07:00.
        updated = f"2026-11-01T{number % 24:02d}:00:00Z"
        return web.json_response([{"id": f"{repo}-1", "repo": repo, "updated_at": updated}])


async def test_a_30_day_window_then_only_the_new_window(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    events = Events()
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=await serve(events.app())))
    fetch = Fetch.model_validate({
        "name": "events", "connector": "api", "path": "/events",
        "incremental": {"window": {"start": "30d", "step": "1d", "lookback": "2h"}},
    })  # fmt: skip
    pipeline = Pipeline(
        name="events", stages=[fetch, Store(name="save", table="events", key=["id"])]
    )
    database = f"sqlite:///{tmp_path / 'p.db'}"
    before = datetime.now(UTC)
    first = await run(pipeline, [api], database=database)
    after = datetime.now(UTC)
    assert first.status == "ok" and len(events.windows) == 30
    for (a, b), (c, _) in zip(events.windows, events.windows[1:], strict=False):
        assert b - a == timedelta(days=1) and b == c  # contiguous, one day each
    starts = sorted(a for a, _ in events.windows)
    assert (
        before - timedelta(days=30) - timedelta(seconds=1)
        <= starts[0]
        <= after - timedelta(days=30)
    )
    last_end = max(b for _, b in events.windows)
    events.windows.clear()
    second = await run(pipeline, [api], database=database)
    assert second.status == "ok"
    [(start, end)] = events.windows  # only what is new, from two hours before the mark
    assert (
        start == last_end.replace(microsecond=0) - timedelta(hours=2)
        or abs((start - (last_end - timedelta(hours=2))).total_seconds()) < 1
    )
    # Bounds go out to the second: a second run within the same second ends where the
    # first did, never before it.
    assert end >= last_end


async def test_each_of_50_partitions_keeps_its_own_mark(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    events = Events()
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=await serve(events.app())))
    repos = [f"r{n}" for n in range(50)]
    fetch = Fetch.model_validate({
        "name": "issues", "connector": "api", "path": "/repos/{repo}/issues",
        "for_each": repos, "as": "repo",
        "incremental": {"cursor_field": "updated_at", "param": "since"},
    })  # fmt: skip
    pipeline = Pipeline(
        name="issues", stages=[fetch, Store(name="save", table="issues", key=["id"])]
    )
    database = f"sqlite:///{tmp_path / 'p.db'}"
    assert (await run(pipeline, [api], database=database)).status == "ok"
    assert all(events.since[r] == [None] for r in repos)  # the first run: no marks yet
    await run(pipeline, [api], database=database)
    for n, repo in enumerate(repos):
        assert events.since[repo][1] == f"2026-11-01T{n % 24:02d}:00:00Z", repo
    async with open_database(database) as db:
        state = await Journal(db).all_state("issues")
    assert len(state) == 50
    assert {row["key"] for row in state} == {f"incremental:issues:repo={r}" for r in repos}
    # A repository added later starts from the beginning, the others from their marks.
    fetch51 = Fetch.model_validate({**fetch.model_dump(by_alias=True), "for_each": [*repos, "r50"]})
    bigger = Pipeline(
        name="issues", stages=[fetch51, Store(name="save", table="issues", key=["id"])]
    )
    await run(bigger, [api], database=database)
    assert events.since["r50"] == [None] and events.since["r3"][-1] == "2026-11-01T03:00:00Z"


def test_podium_state_show_set_and_reset(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "p.db"}"\n'
        '[connectors.api]\nkind = "http"\nbase_url = "http://127.0.0.1:9"\n'
        '[pipelines.issues]\n[[pipelines.issues.stages]]\nname = "issues"\nkind = "fetch"\n'
        'connector = "api"\npath = "/issues"\n'
        'incremental = { cursor_field = "updated_at", param = "since" }\n',
        encoding="utf-8",
    )
    runner = CliRunner()

    def podium(*args: str) -> Any:
        return runner.invoke(cli, [*args, "--config", str(config)])

    assert "no stored state" in podium("state", "show", "issues").stdout
    done = podium("state", "set", "issues", "incremental:issues", '"2026-11-01T00:00:00Z"')
    assert done.exit_code == 0, done.output
    shown = podium("state", "show", "issues", "--json")
    assert '"value": "2026-11-01T00:00:00Z"' in shown.stdout
    bad = podium("state", "set", "issues", "whatever", "1")
    assert bad.exit_code == 2 and "incremental:STAGE" in bad.stderr
    # A stage that does not exist: kept, it would never be read.
    nosuch = podium("state", "set", "issues", "incremental:isues", '"x"')
    assert nosuch.exit_code == 2 and "no incremental stage 'isues'" in nosuch.stderr
    assert "keys: incremental:issues" in nosuch.stderr
    asked = podium("state", "reset", "issues")
    assert asked.exit_code == 2 and "--yes" in asked.stderr  # not at a terminal
    reset = podium("state", "reset", "issues", "--yes")
    assert reset.exit_code == 0 and "1 value(s) removed" in reset.stdout
    assert podium("state", "show", "nope").exit_code == 2


def test_a_window_too_fine_for_its_range_is_a_config_error(tmp_path: Path) -> None:
    from .config_helpers import one_line_error

    window = 'window = { start = "30d", step = "1s" }'
    line = one_line_error(tmp_path, command="validate", fetch_extra=f"incremental = {{ {window} }}")
    assert "incremental.window: more than 10,000 windows of 0:00:01 in one run" in line


async def test_a_mark_set_too_far_back_fails_the_run_in_one_line(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    """The range is fine at load; `podium state set` moved the mark two years back."""
    events = Events()
    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=await serve(events.app())))
    fetch = Fetch.model_validate({
        "name": "events", "connector": "api", "path": "/events",
        "incremental": {"window": {"start": "2d", "step": "1h"}},
    })  # fmt: skip
    pipeline = Pipeline(
        name="events", stages=[fetch, Store(name="save", table="events", key=["id"])]
    )
    database = f"sqlite:///{tmp_path / 'p.db'}"
    assert (await run(pipeline, [api], database=database)).status == "ok"
    async with open_database(database) as db:
        journal = Journal(db)
        [item] = await journal.all_state("events")
        await journal.set_state("events", item["key"], "2023-01-01T00:00:00+00:00")
    events.windows.clear()
    result = await run(pipeline, [api], database=database)
    assert result.status == "failed" and events.windows == []
    assert result.run.error is not None
    assert result.run.error.startswith("more than 10,000 windows of 1:00:00 in one run")
    assert "internal error" not in result.run.error
