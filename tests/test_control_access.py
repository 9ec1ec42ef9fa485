"""The command line reaching a daemon whose reads need a token, and a config it cannot
parse: a wrong token is one line and never costs the daemon its runtime file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from .daemon_helpers import PODIUM, pipeline_toml, start_daemon, write_config
from .servers import items_app

pytestmark = pytest.mark.anyio
WRITE = "control-write-token-5b2e8f1c"
READ = "control-read-token-9d4a7e3b"


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = await anyio.run_process(
        [PODIUM, *args], check=False, env={**os.environ, **(env or {})}
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_a_read_token_lets_the_cli_in_and_a_wrong_one_keeps_the_runtime_file(
    serve: Callable[..., object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    monkeypatch.setenv("CONTROL_WRITE", WRITE)
    monkeypatch.setenv("CONTROL_READ", READ)
    config = write_config(
        tmp_path / "config.toml",
        database=f"sqlite:///{tmp_path / 'podium.db'}",
        base_url=base,
        scheduler='token = "${CONTROL_WRITE}"\nread_token = "${CONTROL_READ}"',
        pipelines=pipeline_toml("sync", '{ interval = "1h" }'),
    )
    args = ("--config", str(config))
    daemon = await start_daemon(config, "node-r")
    try:
        await daemon.wait_ready()
        code, out, err = await cli("status", *args)
        assert code == 0, err
        assert "sync" in out
        code, _, err = await cli("trigger", "sync", "--wait", *args)
        assert code == 0, err

        wrong = {"CONTROL_WRITE": "x" * 20, "CONTROL_READ": "y" * 20}
        for command in (("status",), ("reload",), ("trigger", "sync")):
            code, _, err = await cli(*command, *args, env=wrong)
            assert code == 1, (command, err)
            assert "HTTP 401" in err and "token is wrong" in err, err
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1
            assert daemon.own_info() is not None  # the file of a live daemon stays

        code, _, err = await cli("status", *args)  # and the right token still reaches it
        assert code == 0, err
    finally:
        await daemon.aclose()


async def test_a_config_that_is_not_toml_is_reported_as_such(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    config = write_config(
        tmp_path / "config.toml",
        database=f"sqlite:///{tmp_path / 'podium.db'}",
        base_url=base,
        scheduler=f'token = "{WRITE}"',
        pipelines=pipeline_toml("sync", '{ interval = "1h" }'),
    )
    args = ("--config", str(config))
    daemon = await start_daemon(config, "node-b")
    try:
        await daemon.wait_ready()
        good = config.read_text(encoding="utf-8")
        config.write_text(good + "\n[pipelines.sync\n", encoding="utf-8")
        _, _, validated = await cli("validate", *args)
        for command in (("reload",), ("trigger", "sync"), ("status",)):
            code, _, err = await cli(*command, *args)
            assert code == 2, (command, err)
            assert "invalid TOML" in err and "write token" not in err, err
            assert err.strip().splitlines() == validated.strip().splitlines()[-1:], err
        assert daemon.own_info() is not None
    finally:
        await daemon.aclose()
