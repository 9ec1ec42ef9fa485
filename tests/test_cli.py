"""The command line end to end: a real process, the demo API on loopback, a SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from podium.cli import app
from podium.cli.demo import serve_demo_api

ROOT = Path(__file__).resolve().parent.parent
PODIUM = [sys.executable, "-m", "podium"]


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The repository's own config.toml against a running demo API and a scratch database."""
    with serve_demo_api() as url:
        yield {
            "PODIUM_DEMO_URL": url,
            "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        }


def podium(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PODIUM, *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_demo_stores_one_row_per_city_and_prints_a_summary(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    done = podium("run", "demo", env=demo_env)
    assert done.returncode == 0, done.stderr
    assert "demo · run" in done.stdout and "ok" in done.stdout
    assert "81 requests" in done.stdout
    with sqlite3.connect(tmp_path / "demo.db") as db:
        assert db.execute("select count(*) from city_conditions").fetchone() == (40,)
        row = db.execute(
            "select city, temperature_c, pm25 from city_conditions where city_id = 'par'"
        ).fetchone()
        assert row[0] == "Paris" and row[1] is not None and row[2] is not None
        assert db.execute("select sum(cities) from country_conditions").fetchone() == (40,)
        assert db.execute("select status from podium_runs").fetchall() == [("ok",)]


def test_run_json_then_runs_and_show(demo_env: dict[str, str]) -> None:
    done = podium("run", "demo", "--json", env=demo_env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "ok"
    assert summary["stored"] == 40 + 26
    assert summary["stages"]["per_city"]["out"] == 40
    assert {c["check"]: c["ok"] for c in summary["checks"]} == {
        "plausible": True,
        "all_cities": True,
    }
    listed = podium("runs", "demo", env=demo_env)
    assert listed.returncode == 0 and summary["run_id"][:8] in listed.stdout
    shown = podium("show", summary["run_id"][:10], "--json", env=demo_env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["run"]["id"] == summary["run_id"]


def test_dry_run_stores_nothing(demo_env: dict[str, str], tmp_path: Path) -> None:
    done = podium("run", "demo", "--dry-run", "--json", env=demo_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stored"] == 0
    with sqlite3.connect(tmp_path / "demo.db") as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
    assert "city_conditions" not in tables


def test_unreachable_host_fails_the_run_in_one_line_and_keeps_stored_rows(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    assert podium("run", "demo", env=demo_env).returncode == 0
    dead = {**demo_env, "PODIUM_DEMO_URL": "http://127.0.0.1:9"}  # nothing listens on port 9
    done = podium("run", "demo", "--json", env=dead)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "failed"
    assert result["failed_requests"] == 1  # the city list; nothing fans out from it
    assert result["error"] == (
        "1 of 1 requests failed: more than the policy's max_failed_ratio of 0.1 — "
        "1× cannot connect to 127.0.0.1:9: connection refused after 4 attempts "
        "(first GET http://127.0.0.1:9/cities)"
    )
    with sqlite3.connect(tmp_path / "demo.db") as db:
        assert db.execute("select count(*) from city_conditions").fetchone() == (40,)
        statuses = [r[0] for r in db.execute("select status from podium_runs order by started_at")]
    assert statuses == ["ok", "failed"]


def test_unknown_run_id_is_one_line(demo_env: dict[str, str]) -> None:
    done = podium("show", "deadbeef", env=demo_env)
    assert done.returncode == 2
    assert done.stderr.strip() == "podium: error: no run with id 'deadbeef' (see: podium runs)"


def test_validate_and_pipelines_on_the_shipped_config() -> None:
    runner = CliRunner()
    valid = runner.invoke(app, ["validate", "--config", str(ROOT / "config.toml")])
    assert valid.exit_code == 0, valid.stderr
    assert "ok" in valid.stdout
    listed = runner.invoke(app, ["pipelines", "--config", str(ROOT / "config.toml")])
    assert listed.exit_code == 0
    for name in ("demo", "open_meteo", "github_repos"):
        assert name in listed.stdout


def test_demo_command_runs_offline(tmp_path: Path) -> None:
    """`podium demo` starts the bundled API itself: the README's first command."""
    done = podium(
        "demo",
        "--config",
        str(ROOT / "config.toml"),
        "--json",
        env={"PODIUM_DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stored"] == 66


def test_values_from_the_environment_are_masked_in_output_logs_and_journal(
    tmp_path: Path,
) -> None:
    """An API key passed as a plain query parameter (not declared as auth) still never
    shows: values the config takes from the environment are masked wherever a run writes."""
    secret = "Sup3rSecretKey-42"
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "s.db"}"

[connectors.api]
kind = "http"
base_url = "http://127.0.0.1:9"
retry = {{ attempts = 1 }}

[pipelines.p]
params = {{ key = "${{PODIUM_TEST_APPKEY}}" }}

[[pipelines.p.stages]]
name = "get"
kind = "fetch"
connector = "api"
path = "/weather"
params = {{ appid = "{{params.key}}" }}
""",
        encoding="utf-8",
    )
    done = podium(
        "run", "p", "--config", str(config), "--json", "--log-json",
        env={"PODIUM_TEST_APPKEY": secret},
    )  # fmt: skip
    assert done.returncode == 1  # nothing listens on port 9
    assert secret not in done.stdout + done.stderr
    assert "appid=***" in done.stdout + done.stderr
    with sqlite3.connect(tmp_path / "s.db") as db:
        dump = "\n".join(db.iterdump())
    assert secret not in dump
    assert "podium_runs" in dump
