"""The orchestrator: runs pipelines — config, storage, the HTTP gateway and the engine.

Parts, in import order (each imports only those before it):

- ``config``  — loads ``config.toml`` into pipelines and connectors (no I/O library);
- ``storage`` — the database, tables and the run journal (SQLAlchemy Core);
- ``http``    — the gateway every request passes, and the transport seam (aiohttp);
- ``engine``  — runs a pipeline: stage tasks, streams, counters, the run's record.

Names are loaded on first use (PEP 562), so ``from podium.orchestrator.config import
load_config`` never imports aiohttp or SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loguru import logger

# A library stays quiet until its host asks: the CLI and ``configure_logging`` enable it.
logger.disable("podium")

_EXPORTS = {
    "Config": "config",
    "DatabaseConfig": "config",
    "LimitsConfig": "config",
    "load_config": "config",
    "CheckResultRow": "storage",
    "Database": "storage",
    "Journal": "storage",
    "RunEventRow": "storage",
    "RunRow": "storage",
    "open_database": "storage",
    "AiohttpTransport": "http",
    "Gateway": "http",
    "MockReply": "http",
    "MockTransport": "http",
    "Transport": "http",
    "reply": "http",
    "ConnectorStats": "engine",
    "RunResult": "engine",
    "RunStats": "engine",
    "StageStats": "engine",
    "run_pipeline": "engine",
    "Redactor": "_redact",
    "configure_logging": "_logging",
    "run": "_run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    part = _EXPORTS.get(name)
    if part is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{part}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from ._logging import configure_logging as configure_logging
    from ._redact import Redactor as Redactor
    from ._run import run as run
    from .config import Config as Config
    from .config import DatabaseConfig as DatabaseConfig
    from .config import LimitsConfig as LimitsConfig
    from .config import load_config as load_config
    from .engine import ConnectorStats as ConnectorStats
    from .engine import RunResult as RunResult
    from .engine import RunStats as RunStats
    from .engine import StageStats as StageStats
    from .engine import run_pipeline as run_pipeline
    from .http import AiohttpTransport as AiohttpTransport
    from .http import Gateway as Gateway
    from .http import MockReply as MockReply
    from .http import MockTransport as MockTransport
    from .http import Transport as Transport
    from .http import reply as reply
    from .storage import CheckResultRow as CheckResultRow
    from .storage import Database as Database
    from .storage import Journal as Journal
    from .storage import RunEventRow as RunEventRow
    from .storage import RunRow as RunRow
    from .storage import open_database as open_database
