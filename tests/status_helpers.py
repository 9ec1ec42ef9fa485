"""What the status page tests share: a config with a pipeline that works, one that
fails, a monitor and an alert; a daemon started with a token; HTTP reads of its pages."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from .daemon_helpers import DaemonProcess, pipeline_toml, start_daemon, write_config

TOKEN = "status-page-test-token-5e0c2b7d"


def status_config(
    tmp_path: Path,
    base_url: str,
    hook_url: str,
    *,
    database: str | None = None,
    scheduler: str = "",
    extra: str = "",
) -> Path:
    """``orders`` (3 pages, hourly until the top of this hour: it runs only when asked or
    backfilled, never by itself while a test runs across an hour), ``broken`` (pages 3
    and 4 answer 404: it fails, every 2 s), monitor ``api_up`` (every second) and
    alert ``ops`` (a webhook, after one failure)."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    schedule = f'{{ cron = "0 * * * *", end = "{hour.isoformat()}" }}'
    pipelines = pipeline_toml("orders", schedule, pages=3)
    pipelines += pipeline_toml("broken", '{ interval = "2s" }', pages=5, extra='alerts = ["ops"]')
    pipelines += f"""
[monitors.api_up]
url = "{base_url}/items/0"
interval = "1s"
conditions = ["status == `200`", "elapsed_ms < `5000`"]
description = "the items API answers"

[alerts.ops]
webhook = {{ url = "{hook_url}/hook" }}
failure_threshold = 1

[maintenance.nightly]
cron = "0 2 * * *"
duration = "1h"
description = "database backups"
{extra}
"""
    return write_config(
        tmp_path / "config.toml",
        database=database or f"sqlite:///{tmp_path / 'podium.db'}",
        base_url=base_url,
        pipelines=pipelines,
        scheduler='token = "${PODIUM_TOKEN}"\n' + scheduler,
    )


async def start_with_token(config: Path, node_id: str) -> DaemonProcess:
    os.environ["PODIUM_TOKEN"] = TOKEN
    try:
        return await start_daemon(config, node_id)
    finally:
        del os.environ["PODIUM_TOKEN"]


BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def get_json(root: str, path: str, **headers: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(root + path, headers=headers) as resp:
        assert resp.status == 200, (path, resp.status, await resp.text())
        assert resp.content_type == "application/json"
        return await resp.json()


async def post(root: str, path: str, body: dict[str, Any]) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(root + path, json=body, headers=BEARER) as resp,
    ):
        assert resp.status in (200, 202), (path, resp.status, await resp.text())
        return await resp.json()
