"""The engine: runs one pipeline — stage tasks, streams, counters, the run's record."""

from ..http import ConnectorStats
from ._durability import pipeline_hash
from ._runner import RunResult, new_run_id, run_pipeline, this_process
from ._stats import RunStats, StageStats

__all__ = [
    "ConnectorStats",
    "RunResult",
    "RunStats",
    "StageStats",
    "new_run_id",
    "pipeline_hash",
    "run_pipeline",
    "this_process",
]
