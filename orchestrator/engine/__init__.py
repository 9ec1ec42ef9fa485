"""The engine: runs one pipeline — stage tasks, streams, counters, the run's record."""

from ..http import ConnectorStats
from ._runner import RunResult, new_run_id, run_pipeline
from ._stats import RunStats, StageStats

__all__ = ["ConnectorStats", "RunResult", "RunStats", "StageStats", "new_run_id", "run_pipeline"]
