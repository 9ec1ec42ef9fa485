"""Backfill runs past slots only: a future range, dates out of range and monitors are
refused with one line (the API answers 400 with the reason), and --to is clipped to now."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest

from .daemon_helpers import daemon_config, pipeline_toml, podium_cli, start_daemon
from .servers import items_app

pytestmark = pytest.mark.anyio


async def cli(*args: str) -> tuple[int, str, str]:
    return await podium_cli(*args, wide=True)  # tables unwrapped, one row a line


async def test_backfill_refuses_the_future_far_dates_and_monitors(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    pipelines = pipeline_toml("hourly", '{ cron = "0 * * * *" }')
    pipelines += pipeline_toml("ticks", '{ interval = "1h" }')
    pipelines += f'\n[monitors.api]\nurl = "{base}/items/0"\ninterval = "1h"\n'
    config = daemon_config(
        tmp_path,
        base,
        pipelines=pipelines,
    )
    args = ("--config", str(config))
    daemon = await start_daemon(config, "node-bf")
    now = datetime.now(UTC)
    try:
        await daemon.wait_ready()

        async def backfill(pipeline: str, start: str, end: str) -> tuple[int, str, str]:
            return await cli("backfill", pipeline, "--from", start, "--to", end, *args)

        soon = (now + timedelta(hours=1)).isoformat()
        later = (now + timedelta(hours=5)).isoformat()
        for pipeline in ("hourly", "ticks"):
            code, out, err = await backfill(pipeline, soon, later)
            assert code == 2 and out == "", err
            assert "is in the future" in err and len(err.strip().splitlines()) == 1, err
            code, _, err = await backfill(pipeline, "9999-12-31T23:59Z", "9999-12-31T23:59:30Z")
            assert code == 2 and "is in the future" in err, err
            code, _, err = await backfill(pipeline, "0001-01-01T00:00Z", "0001-01-01T05:00Z")
            assert code == 2 and "before 1970-01-01" in err and "did not answer" not in err, err
            assert len(err.strip().splitlines()) == 1, err

        # A range that ends after now runs its past slots only.
        start = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
        code, out, err = await backfill("hourly", start.isoformat(), later)
        assert code == 0, err
        words = " ".join(out.split())  # the console may wrap the line
        assert "4 slot(s)" in words and "--to clipped to now" in words, out

        code, _, err = await backfill("api", start.isoformat(), now.isoformat())
        assert code == 2 and "'api' is a monitor" in err, err

        output = daemon.output()
        assert "Traceback" not in output and "OverflowError" not in output, output
    finally:
        await daemon.aclose()


async def test_status_shows_a_paused_pipeline_with_no_next_fire_as_the_page_does(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    pipelines = pipeline_toml("hourly", '{ cron = "0 * * * *" }')
    pipelines += pipeline_toml("other", '{ cron = "0 * * * *" }')
    config = daemon_config(
        tmp_path,
        base,
        pipelines=pipelines,
    )
    args = ("--config", str(config))
    daemon = await start_daemon(config, "node-ps")
    try:
        info = await daemon.wait_ready()
        assert (await cli("pause", "hourly", "--reason", "incident 9", *args))[0] == 0
        code, out, err = await cli("status", "--json", *args)
        assert code == 0, err
        [doc] = orjson.loads(out)
        by_name = {p["name"]: p for p in doc["pipelines"]}
        assert by_name["hourly"]["paused"] and by_name["hourly"]["next_fire"] is None
        assert by_name["other"]["next_fire"] is not None
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{info['port']}/.json"
            async with session.get(url) as response:
                page = await response.json()
        on_page = {p["name"]: p for p in page["pipelines"]}
        assert on_page["hourly"]["next_fire"] is None  # the two agree

        code, out, err = await cli("status", *args)
        assert code == 0, err
        [row] = [line for line in out.splitlines() if "hourly" in line]
        assert "paused" in out and "yes: incident 9" in row, out
        assert by_name["other"]["next_fire"][:10] not in row  # no next fire shown
    finally:
        await daemon.aclose()
