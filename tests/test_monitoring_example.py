"""The shipped config.toml's monitoring example, offline: its monitor watches the demo
API's /health and its alert reaches the demo API's own webhook sink."""

from __future__ import annotations

import shutil
from pathlib import Path

import aiohttp
import anyio
import pytest
from typer.testing import CliRunner, Result

from podium.cli import app
from podium.cli.demo import demo_app

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent


async def test_the_shipped_monitor_alerts_the_demo_webhook(tmp_path: Path, serve) -> None:
    config = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", config)
    api = await serve(demo_app())
    env = {"PODIUM_DEMO_URL": api, "PODIUM_ALERT_WEBHOOK": f"{api}/webhook"}

    async def podium(*args: str) -> Result:
        def invoke() -> Result:
            return CliRunner().invoke(app, [*args, "--config", str(config)], env=env)

        return await anyio.to_thread.run_sync(invoke)

    async with aiohttp.ClientSession() as http:

        async def received() -> list[str]:
            async with http.get(f"{api}/webhook") as resp:
                return [n["title"] for n in await resp.json()]

        assert (await podium("validate")).exit_code == 0
        assert (await podium("run", "demo_health")).exit_code == 0
        await http.post(f"{api}/chaos", params={"health": "down"})
        first = await podium("run", "demo_health")
        assert first.exit_code == 1 and await received() == []  # one failure: not yet
        await podium("run", "demo_health")
        assert await received() == ["DOWN: monitor demo_health"]
        await http.post(f"{api}/chaos", params={"health": "up"})
        for _ in range(2):
            assert (await podium("run", "demo_health")).exit_code == 0
        assert await received() == ["DOWN: monitor demo_health", "RESOLVED: monitor demo_health"]
    checks = await podium("checks", "demo_health", "--json")
    assert '"state": "passing"' in checks.stdout and '"runs": 5' in checks.stdout
