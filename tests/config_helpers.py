"""A small config to break, and the one line the command line answers a broken one with:
what the config-error tests of every feature share."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from podium.cli import app

BASE = """
[database]
url = "sqlite:///{db}"

[connectors.api]
kind = "http"
base_url = "http://127.0.0.1:9"
{connector_extra}

[pipelines.p]
{pipeline_extra}

[[pipelines.p.stages]]
name = "get"
kind = "fetch"
connector = "api"
path = "/items"
{fetch_extra}

[[pipelines.p.stages]]
name = "save"
kind = "store"
table = "items"
key = ["id"]
"""


def config(tmp_path: Path, **parts: str) -> str:
    values = {"connector_extra": "", "pipeline_extra": "", "fetch_extra": ""} | parts
    return BASE.format(db=tmp_path / "t.db", **values)


def one_line_error(tmp_path: Path, command: str = "run", **parts: str) -> str:
    """Write ``config(tmp_path, **parts)``, run ``podium run p`` (or ``validate``) on it and
    return its one line of error, after checking it is one line, exit 2, no traceback."""
    path = tmp_path / "config.toml"
    path.write_text(config(tmp_path, **parts), encoding="utf-8")
    args = ["run", "p"] if command == "run" else [command]
    result = CliRunner().invoke(app, [*args, "--config", str(path)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1, lines
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]
