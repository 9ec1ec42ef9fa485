"""Journal times are instants (UTC in, aware out) on SQLite and PostgreSQL; marks only
move forward, even when two runs finish together; a run whose record cannot be written
says so and exits non-zero."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import orjson
import pytest
from typer.testing import CliRunner

from podium.cli import app as cli
from podium.orchestrator import Journal, RunRow, open_database, run_pipeline
from podium.pipeline import Fetch, Pipeline, Store
from podium.testing import FakeConnector

pytestmark = pytest.mark.anyio
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    return str(request.getfixturevalue("postgres_url"))


def tiny() -> tuple[Pipeline, FakeConnector]:
    api = FakeConnector("api", {"GET /one": {"id": 1}})
    pipeline = Pipeline(
        name="tiny",
        stages=[
            Fetch(name="one", connector="api", path="/one"),
            Store(name="save", table="one", key="id"),
        ],
    )
    return pipeline, api


async def test_both_fires_of_the_autumn_dst_hour_are_recorded(database: str) -> None:
    """02:30 CEST and 02:30 CET on 2026-10-25 are an hour apart: two fires, not one."""
    first = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=0)
    second = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    pipeline, api = tiny()
    async with open_database(database) as db:
        for fire in (first, second):
            result = await run_pipeline(
                pipeline,
                connectors={"api": api},
                database=db,
                scheduled_for=fire,
                transport={"api": api.transport},
            )
            assert result.status == "ok", result.run.error
        journal = Journal(db)
        fires = sorted(r.scheduled_for for r in await journal.runs("tiny") if r.scheduled_for)
        last = await journal.last_fire("tiny")
    assert fires == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    ]
    assert all(f.tzinfo is UTC for f in fires)
    assert last == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_show_json_and_runs_print_times_with_their_zone(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "p.db"}"\n', encoding="utf-8")

    async def record() -> str:
        pipeline, api = tiny()
        async with open_database(f"sqlite:///{tmp_path / 'p.db'}") as db:
            result = await run_pipeline(
                pipeline, connectors={"api": api}, database=db,
                scheduled_for=datetime(2026, 7, 1, 9, 0, tzinfo=BERLIN),
                transport={"api": api.transport},
            )  # fmt: skip
        return result.run.id

    run_id = anyio.run(record, backend="asyncio")
    shown = CliRunner().invoke(cli, ["show", run_id, "--config", str(config), "--json"])
    assert shown.exit_code == 0, shown.output
    doc = orjson.loads(shown.stdout)["run"]
    assert doc["scheduled_for"] == "2026-07-01T07:00:00Z"  # 09:00 Berlin, as an instant
    assert doc["started_at"].endswith("Z") and doc["finished_at"].endswith("Z")
    listing = CliRunner().invoke(cli, ["runs", "--config", str(config)])
    assert "started (UTC)" in listing.stdout


async def test_marks_only_move_forward_when_runs_finish_together(database: str) -> None:
    """Two runs of one pipeline finish at once with different marks: both are recorded,
    and the mark is the greater, whichever commits last."""
    key = "incremental:items"
    async with open_database(database) as db:
        journal = Journal(db)
        runs = [RunRow(id=f"run{i:029d}", pipeline="p") for i in range(4)]
        for run in runs:
            await journal.start(run)
        for run in runs:
            run.status = "ok"
            run.finished_at = datetime.now(UTC)

        async def finish(run: RunRow, mark: int) -> None:
            await journal.finish(run, [], [], {key: mark})

        async with anyio.create_task_group() as tg:  # together
            tg.start_soon(finish, runs[0], 5)
            tg.start_soon(finish, runs[1], 10)
        assert await journal.state("p", [key]) == {key: 10}
        await finish(runs[2], 20)  # one after the other, the lower one last
        await finish(runs[3], 15)
        assert await journal.state("p", [key]) == {key: 20}
        assert {r.status for r in await journal.runs("p")} == {"ok"}


def test_a_run_whose_record_cannot_be_written_says_so(tmp_path: Path) -> None:
    """The rows are stored; the journal refuses the final write (a disk that just filled):
    the command names the run and exits 1, rather than reporting an ok it never recorded."""
    from podium.cli.demo import serve_demo_api

    db_path = tmp_path / "p.db"
    config = tmp_path / "config.toml"
    with serve_demo_api() as base:
        config.write_text(
            f"""
[database]
url = "sqlite:///{db_path}"

[connectors.api]
kind = "http"
base_url = "{base}"

[pipelines.cities]
[[pipelines.cities.stages]]
name = "cities"
kind = "fetch"
connector = "api"
path = "/cities"
records = "cities"

[[pipelines.cities.stages]]
name = "save"
kind = "store"
table = "cities"
key = ["id"]
""",
            encoding="utf-8",
        )
        runner = CliRunner()
        assert runner.invoke(cli, ["run", "cities", "--config", str(config)]).exit_code == 0
        with sqlite3.connect(db_path) as db:
            db.execute(
                "create trigger refuse before update on podium_runs when new.status != 'running' "
                "begin select raise(abort, 'database or disk is full'); end"
            )
        result = runner.invoke(cli, ["run", "cities", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "but its record was not written: recording the run result: database or disk" in (
        " ".join(result.output.split())
    )
    with sqlite3.connect(db_path) as db:
        assert db.execute("select count(*) from cities").fetchone() == (40,)
        assert db.execute("select status from podium_runs order by started_at").fetchall() == [
            ("ok",),
            ("running",),
        ]
