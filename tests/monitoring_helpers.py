"""What the monitoring tests share: an endpoint that answers a scripted sequence, a
config with a monitor and an alert, and running a pipeline the way ``podium run`` does
(run, then deliver its notifications)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from podium.orchestrator import Config, RunResult, load_config, open_database, run_pipeline
from podium.orchestrator.notify import Dispatcher


@dataclass
class Script:
    """Answers each request with the next status of ``statuses`` (the last one repeats)."""

    statuses: list[int]
    seen: int = 0
    delays: dict[int, float] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        index = min(self.seen, len(self.statuses) - 1)
        self.seen += 1
        status = self.statuses[index]
        return web.json_response({"ok": status == 200, "items": [1, 2]}, status=status)


def monitoring_config(
    tmp_path: Path, *, monitor: str, alerts: str, extra: str = "", database: str | None = None
) -> Path:
    path = tmp_path / "config.toml"
    url = database or f"sqlite:///{tmp_path / 'podium.db'}"
    path.write_text(
        f'[database]\nurl = "{url}"\n\n[scheduler]\nport = 0\n\n{alerts}\n{monitor}\n{extra}\n',
        encoding="utf-8",
    )
    return path


async def run_and_deliver(config: Config, name: str, **kw: Any) -> RunResult:
    """One run of ``name``, then its notifications delivered (as ``podium run`` does)."""
    pipeline = config.pipeline(name)
    async with open_database(config.database.url) as db:
        result = await run_pipeline(
            pipeline,
            connectors=config.connectors_for(pipeline),
            database=db,
            secrets=config.secrets,
            alerts=config.rules.get(name, ()),
            **kw,
        )
        if result.notifications:
            dispatcher = Dispatcher(db, lambda: config, node="test")
            await dispatcher.deliver(result.notifications, within=10)
    return result


def load(path: Path) -> Config:
    return load_config(path)
