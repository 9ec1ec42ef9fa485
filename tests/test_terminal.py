"""What a person sees: ``podium run`` in a real terminal (a pty), its output replayed into
a terminal emulator (pyte), and the final screen checked as a reader would see it."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pyte
import pytest
from aiohttp import web

pytestmark = pytest.mark.anyio
PODIUM = str(Path(sys.executable).with_name("podium"))
COLUMNS, ROWS = 110, 120


def slow_app() -> web.Application:
    """``/slow/{n}``: 0.15 s each; n = 5 answers 500, so a warning is logged mid-run."""
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        await asyncio.sleep(0.15)
        if n == 5:
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response({"id": n, "name": f"item [{n}]"})

    app.router.add_get("/slow/{n}", handler)
    return app


def run_in_pty(args: list[str], cwd: Path, timeout: float = 60) -> bytes:
    """Run a command with a pseudo-terminal as its stdin, stdout and stderr; all it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
    env.pop("NO_COLOR", None)
    import subprocess

    process = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal: it is done
            break
        if not chunk:
            break
        out += chunk
    process.wait(10)
    os.close(master)
    return bytes(out)


def final_screen(output: bytes) -> list[str]:
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    stream.feed(output.replace(b"\n", b"\r\n") if b"\r\n" not in output else output)
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


async def test_a_warning_during_a_run_gets_its_own_line_and_no_frame_goes_stale(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    base = await serve(slow_app())
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "p.db"}"

[connectors.api]
kind = "http"
base_url = "{base}"
concurrency = 2
retry = {{ attempts = 1 }}

[pipelines.slowish]
policy = {{ max_failed_ratio = 0.5 }}

[[pipelines.slowish.stages]]
name = "items"
kind = "fetch"
connector = "api"
for_each = {{ range = [0, 12] }}
path = "/slow/{{value}}"

[[pipelines.slowish.stages]]
name = "save"
kind = "store"
table = "items"
key = ["id"]
batch_size = 2
""",
        encoding="utf-8",
    )
    output = await anyio.to_thread.run_sync(
        run_in_pty, [PODIUM, "run", "slowish", "--config", str(config)], tmp_path
    )
    lines = final_screen(output)
    text = "\n".join(lines)
    assert "Traceback" not in text, text

    # The warning is a line of its own: a log line, not glued onto a progress bar.
    [warning] = [line for line in lines if "request failed" in line]
    assert "WARNING" in warning and "━" not in warning and "records" not in warning, warning
    assert "/slow/5: HTTP 500" in warning

    # One progress row per stage in the final frame: no stale first frame left above it.
    assert len([line for line in lines if line.lstrip().startswith("items ")]) == 1, text
    assert len([line for line in lines if line.lstrip().startswith("save ")]) == 1, text
    [bar] = [line for line in lines if line.lstrip().startswith("items ")]
    assert "12/12" in bar and "11 records, 1 failed" in bar, bar

    # The summary is all there, and it comes last.
    title = next(i for i, line in enumerate(lines) if "slowish · run" in line)
    assert "partial" in lines[title]
    assert title > lines.index(warning)
    assert "11 rows stored" in " ".join(" ".join(lines[title:]).split()), text
