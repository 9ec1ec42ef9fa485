"""``await run(pipeline, ...)``: the entry point for pipelines written in Python."""

from __future__ import annotations

from typing import Any

from connectors import Connector
from pipeline import Pipeline

from ._config import DEFAULT_DATABASE_URL
from ._database import open_database
from ._runner import RunResult, run_pipeline


async def run(
    pipeline: Pipeline,
    connectors: dict[str, Connector] | list[Connector],
    *,
    database: str = DEFAULT_DATABASE_URL,
    concurrency: int = 64,
    params: dict[str, Any] | None = None,
    dry_run: bool = False,
) -> RunResult:
    """Run a pipeline once against ``database`` and return its recorded result."""
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
        )
