"""The orchestrator: runs pipelines — sessions, fan-out, limits, retries, storage, journal."""

from ._config import Config, DatabaseConfig, LimitsConfig, load_config
from ._database import Database, open_database
from ._gateway import Gateway
from ._journal import CheckResultRow, DuplicateFire, Journal, RunEventRow, RunRow
from ._logging import configure_logging
from ._redact import Redactor
from ._run import run
from ._runner import RunResult, run_pipeline
from ._stats import ConnectorStats, RunStats, StageStats

__all__ = [
    "CheckResultRow",
    "Config",
    "ConnectorStats",
    "Database",
    "DatabaseConfig",
    "DuplicateFire",
    "Gateway",
    "Journal",
    "LimitsConfig",
    "Redactor",
    "RunEventRow",
    "RunResult",
    "RunRow",
    "RunStats",
    "StageStats",
    "configure_logging",
    "load_config",
    "open_database",
    "run",
    "run_pipeline",
]
