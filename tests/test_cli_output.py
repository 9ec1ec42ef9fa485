"""What the command line prints, at the widths people use, and where it looks for files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from podium.cli import app as cli
from podium.cli.demo import serve_demo_api

ROOT = Path(__file__).resolve().parent.parent
PODIUM = str(Path(sys.executable).with_name("podium"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def cities_config(folder: Path, base: str, *, db: str = "sqlite:///podium.db") -> Path:
    return write(
        folder / "config.toml",
        f"""
[database]
url = "{db}"

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

[pipelines.broken]
[[pipelines.broken.stages]]
name = "nothing"
kind = "fetch"
connector = "api"
path = "/no/such/path/with/a/long/name/that/makes/the/error/longer/than/eighty/columns"
""",
    )


def podium(*args: str, cwd: Path, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [PODIUM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_runs_reads_at_80_columns_and_says_when_there_are_none(tmp_path: Path) -> None:
    with serve_demo_api() as base:
        config = cities_config(tmp_path, base)
        empty = podium("runs", "--config", str(config), cwd=tmp_path)
        assert empty.returncode == 0
        assert "no runs recorded in" in empty.stdout and "podium run PIPELINE" in empty.stdout
        assert podium("run", "cities", "--config", str(config), cwd=tmp_path).returncode == 0
        assert podium("run", "broken", "--config", str(config), cwd=tmp_path).returncode == 1
    listing = podium("runs", "--config", str(config), cwd=tmp_path, columns=80)
    lines = listing.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split()[:3] == ["id", "pipeline", "status"]
    # The error is readable in full, wrapped under its run, not squeezed into a column.
    error = " ".join(" ".join(lines).split())
    assert "1 of 1 requests failed" in error and "HTTP 404" in error
    assert "/that/makes/the/error/longer/than/eighty/columns" in error.replace(" ", "")


def test_a_dry_run_says_so_everywhere(tmp_path: Path) -> None:
    with serve_demo_api() as base:
        config = cities_config(tmp_path, base)
        run = podium(
            "run", "cities", "--config", str(config), "--dry-run", cwd=tmp_path, columns=120
        )
        doc = orjson.loads(
            podium(
                "run", "cities", "--config", str(config), "--dry-run", "--json", cwd=tmp_path
            ).stdout
        )
    assert run.returncode == 0, run.stderr
    shown = " ".join(run.stdout.split())  # titles and captions wrap at the table's width
    assert "ok in" in shown and "dry run: nothing stored" in shown
    assert "nothing stored (dry run)" in shown
    save = next(line for line in run.stdout.splitlines() if line.startswith("│ save"))
    assert save.split("│")[4].strip() == "0", save  # the store's "out": nothing was written
    assert doc["dry_run"] is True and doc["stored"] == 0
    assert "(dry)" in podium("runs", "--config", str(config), cwd=tmp_path).stdout
    with sqlite3.connect(tmp_path / "podium.db") as db:
        assert db.execute("select name from sqlite_master where name = 'cities'").fetchall() == []


def test_relative_paths_are_the_config_folders_not_the_current_ones(tmp_path: Path) -> None:
    """``podium runs --config elsewhere/config.toml`` reads elsewhere/podium.db, and a
    ``call = "mymod:fn"`` finds mymod.py beside the config — from any working folder."""
    elsewhere = tmp_path / "elsewhere"
    write(
        elsewhere / "mymod.py", "def shout(r):\n    r['name'] = r['name'].upper()\n    return r\n"
    )
    with serve_demo_api() as base:
        config = cities_config(elsewhere, base)
        text = config.read_text(encoding="utf-8").replace(
            '[[pipelines.cities.stages]]\nname = "save"',
            '[[pipelines.cities.stages]]\nname = "shout"\nkind = "transform"\n'
            'call = "mymod:shout"\n\n[[pipelines.cities.stages]]\nname = "save"',
        )
        config.write_text(text, encoding="utf-8")
        here = tmp_path / "here"
        here.mkdir()
        ran = podium("run", "cities", "--config", str(config), cwd=here)
    assert ran.returncode == 0, ran.stderr
    assert not (here / "podium.db").exists()
    with sqlite3.connect(elsewhere / "podium.db") as db:
        assert db.execute("select name from cities where id = 'ber'").fetchone() == ("BERLIN",)
    listing = podium("runs", "--config", str(config), cwd=here)
    assert "cities" in listing.stdout and "ok" in listing.stdout


def test_runs_filters_and_json(tmp_path: Path) -> None:
    with serve_demo_api() as base:
        config = cities_config(tmp_path, base)
        for pipeline in ("cities", "broken", "cities"):
            podium("run", pipeline, "--config", str(config), cwd=tmp_path)
    runner = CliRunner()

    def runs(*args: str) -> list[dict[str, object]]:
        result = runner.invoke(cli, ["runs", "--config", str(config), "--json", *args])
        assert result.exit_code == 0, result.output
        return orjson.loads(result.stdout)  # type: ignore[no-any-return]

    everything = runs()
    assert [r["status"] for r in everything] == ["ok", "failed", "ok"]
    assert [r["pipeline"] for r in runs("--status", "failed")] == ["broken"]
    assert len(runs("--status", "ok", "--status", "failed")) == 3
    assert len(runs("--trigger", "cli")) == 3 and runs("--trigger", "schedule") == []
    assert len(runs("--since", "1h")) == 3 and runs("--since", "2099-01-01T00:00") == []
    started = datetime.fromisoformat(str(everything[-1]["started_at"]))
    assert started.tzinfo is not None and datetime.now(UTC) - started < timedelta(minutes=5)
    assert [r["pipeline"] for r in runs("cities", "--limit", "1")] == ["cities"]
    bad = runner.invoke(cli, ["runs", "--config", str(config), "--status", "okay"])
    assert bad.exit_code == 2 and "--status okay is not a run status" in bad.stderr
    bad = runner.invoke(cli, ["runs", "--config", str(config), "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since expects a duration" in bad.stderr


def test_connectors_lists_every_key_of_auth_retry_and_cookie_login(tmp_path: Path) -> None:
    listing = podium("connectors", cwd=tmp_path, columns=300).stdout
    row = {line.split("│")[1].strip(): line for line in listing.splitlines() if "│" in line}
    assert "attempts = 4" in row["retry"] and "max_retry_after = 120.0" in row["retry"]
    cookie = row['auth, type = "cookie_login"']
    for key in ("login_url (required)", "username_field = 'username'", "body = 'form'", "extra"):
        assert key in cookie
    assert "token (required)" in row['auth, type = "bearer"']
    assert "credentials = 'same_origin'" in row["redirects"]


def test_run_demo_without_the_demo_api_says_how_to_start_it(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text((ROOT / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PODIUM_DEMO_URL"}
    result = subprocess.run(
        [PODIUM, "run", "demo", "--config", str(config)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    hint = [line for line in result.stderr.splitlines() if line.startswith("podium: hint:")]
    assert len(hint) == 1 and "`podium demo-api`" in hint[0] and "`podium demo`" in hint[0]


@pytest.mark.parametrize("width", [60, 80, 200])
def test_the_demo_prints_its_summary_at_any_width(tmp_path: Path, width: int) -> None:
    config = tmp_path / "config.toml"
    config.write_text((ROOT / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    result = podium("demo", "--config", str(config), cwd=tmp_path, columns=width)
    assert result.returncode == 0, result.stderr
    assert "demo · run" in result.stdout and "Traceback" not in result.stdout + result.stderr
