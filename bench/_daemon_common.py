"""Shared by the daemon benchmarks: a one-page API on loopback and an in-process daemon."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

RESULTS = Path(__file__).with_name("RESULTS.md")


def api_app() -> web.Application:
    items = [{"id": i, "name": f"item-{i}", "value": i} for i in range(20)]

    async def page(_request: web.Request) -> web.Response:
        return web.json_response({"items": items})

    app = web.Application()
    app.router.add_get("/items/{page}", page)
    return app


def config_text(db_url: str, base_url: str, schedules: dict[str, str]) -> str:
    out = [
        f'[database]\nurl = "{db_url}"\n',
        '[scheduler]\nport = 0\ngrace = "5s"\n',
        f'[connectors.api]\nkind = "http"\nbase_url = "{base_url}"\n',
    ]
    for name, schedule in schedules.items():
        out.append(
            f"[pipelines.{name}]\nschedule = {schedule}\n\n"
            f'[[pipelines.{name}.stages]]\nname = "items"\nkind = "fetch"\nconnector = "api"\n'
            f'path = "/items/0"\nrecords = "items"\n\n'
            f'[[pipelines.{name}.stages]]\nname = "save"\nkind = "store"\n'
            f'table = "items_{name}"\nkey = ["id"]\n'
        )
    return "\n".join(out)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def record(title: str, lines: list[str]) -> None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = "?"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    python = sys.version.split()[0]
    machine = f"Machine: {platform.machine()}, Python {python}; git {commit} (dirty tree)."
    text = "\n".join([f"\n## {title} — {when}\n", machine, "", *lines, ""])
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(text)
    print(text)
