"""The command line reaching a daemon whose reads need a token, and a config it cannot
parse: a wrong token is one line and never costs the daemon its runtime file."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.abc
import pytest

from .daemon_helpers import (
    PODIUM,
    daemon_config,
    free_port,
    pipeline_toml,
    podium_cli,
    start_daemon,
    wait_for,
)
from .servers import items_app, slow_app

pytestmark = pytest.mark.anyio
WRITE = "control-write-token-5b2e8f1c"
READ = "control-read-token-9d4a7e3b"


cli = podium_cli


async def test_a_read_token_lets_the_cli_in_and_a_wrong_one_keeps_the_runtime_file(
    serve: Callable[..., object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    monkeypatch.setenv("CONTROL_WRITE", WRITE)
    monkeypatch.setenv("CONTROL_READ", READ)
    config = daemon_config(
        tmp_path,
        base,
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
    config = daemon_config(
        tmp_path,
        base,
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


async def test_a_port_in_use_is_one_line_naming_the_address_and_the_daemon_there(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    port = free_port()
    config = daemon_config(
        tmp_path,
        base,
        scheduler=f"port = {port}",
        pipelines=pipeline_toml("sync", '{ interval = "1h" }'),
    )
    config.write_text(config.read_text(encoding="utf-8").replace("port = 0\n", ""), "utf-8")
    first = await start_daemon(config, "node-1")
    try:
        await first.wait_ready()
        code, _, err = await cli("daemon", "--config", str(config), "--node-id", "node-2")
        assert code == 2, err
        assert f"cannot listen on 127.0.0.1:{port}" in err, err
        assert "node 'node-1' of this config" in err and "already running" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    finally:
        await first.aclose()
    with socket.socket() as other:  # something else holds the port
        other.bind(("127.0.0.1", port))
        other.listen()
        code, _, err = await cli("daemon", "--config", str(config), "--node-id", "node-3")
    assert code == 2, err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "[scheduler] port" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


SLOW = """
[pipelines.slow]
[[pipelines.slow.stages]]
name = "wait"
kind = "fetch"
connector = "api"
path = "/slow/1"
"""


async def _follower(config: Path, pipeline: str, log: Path) -> anyio.abc.Process:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return await anyio.open_process(
            [PODIUM, "trigger", pipeline, "--wait", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_following_a_run_survives_the_daemon_dying_and_the_follower_leaving(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, seen = slow_app(30.0)
    base = await serve(app)
    config = daemon_config(
        tmp_path,
        base,
        pipelines=SLOW + SLOW.replace("slow]", "slow2]").replace("slow.", "slow2."),
    )
    daemon = await start_daemon(config, "node-f")
    try:
        await daemon.wait_ready()
        # A follower interrupted with Ctrl-C: normal, so the daemon logs no error.
        log = tmp_path / "first.log"
        follower = await _follower(config, "slow", log)
        await wait_for(lambda: seen.requests >= 1, 15, what="the first run to start")
        await anyio.sleep(0.5)
        follower.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            await follower.wait()
        await follower.aclose()
        await anyio.sleep(1)
        assert "Error handling request" not in daemon.output(), daemon.output()
        assert "Traceback" not in daemon.output(), daemon.output()

        # The daemon killed under a follower: one line, and a non-zero exit.
        log = tmp_path / "second.log"
        follower = await _follower(config, "slow2", log)
        await wait_for(lambda: seen.requests >= 2, 15, what="the second run to start")
        await anyio.sleep(0.5)
        daemon.send(signal.SIGKILL)
        with anyio.fail_after(15):
            code = await follower.wait()
        await follower.aclose()
        err = log.read_text(encoding="utf-8")
        assert code == 1, err
        assert "lost node 'node-f' while following run" in err, err
        assert "Traceback" not in err and "podium show" in err, err
    finally:
        await daemon.aclose()


async def test_an_idempotency_key_reused_with_other_params_is_refused(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    config = daemon_config(
        tmp_path,
        base,
        pipelines=pipeline_toml("sync", '{ interval = "1h" }', extra="params = { n = 1 }"),
    )
    args = ("trigger", "sync", "--idempotency-key", "k1", "--config", str(config))
    daemon = await start_daemon(config, "node-k")
    try:
        await daemon.wait_ready()
        code, out, err = await cli(*args, "--param", "n=5")
        assert code == 0, err
        run_id = out.split()[1]
        code, out, err = await cli(*args, "--param", "n=5")  # the same request: the same run
        assert code == 0 and f"already started run {run_id}" in out, (out, err)
        for other in (("--param", "n=9"), ()):  # n=9, and the default n=1
            code, out, err = await cli(*args, *other)
            assert code == 2 and out == "", (other, out, err)
            assert f"idempotency key 'k1' was used for run {run_id} with other parameters" in err
            assert len(err.strip().splitlines()) == 1, err
    finally:
        await daemon.aclose()
