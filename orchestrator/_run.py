"""``await run(pipeline, ...)``: the entry point for pipelines written in Python."""

from __future__ import annotations

from typing import Any

from podium.connectors import Connector
from podium.pipeline import Pipeline

from .config import DEFAULT_DATABASE_URL
from .engine import RunResult, run_pipeline
from .http import Transports
from .storage import open_database


async def run(
    pipeline: Pipeline,
    connectors: dict[str, Connector] | list[Connector],
    *,
    database: str = DEFAULT_DATABASE_URL,
    concurrency: int = 64,
    params: dict[str, Any] | None = None,
    dry_run: bool = False,
    transport: Transports | None = None,
) -> RunResult:
    """Run a pipeline once against ``database`` and return its recorded result.

    ``transport`` replaces the HTTP transport for every connector, or by connector name;
    ``podium.testing.MockTransport`` runs the pipeline with no socket.
    """
    if isinstance(connectors, list):
        connectors = {c.name: c for c in connectors}
    async with open_database(database) as db:
        return await run_pipeline(
            pipeline,
            connectors=connectors,
            database=db,
            concurrency=concurrency,
            params=params,
            dry_run=dry_run,
            trigger="python",
            transport=transport,
        )
