"""Storage: the database a run writes to, the tables it upserts into, and the journal."""

from ._database import Database, engine_url, open_database, store_error
from ._journal import (
    JOURNAL_TABLES,
    MAX_EVENTS_PER_RUN,
    RUN_STATUSES,
    CheckResultRow,
    Journal,
    RunEventRow,
    RunRow,
    utcnow,
)
from ._tables import TableWriter, infer_type

__all__ = [
    "JOURNAL_TABLES",
    "MAX_EVENTS_PER_RUN",
    "RUN_STATUSES",
    "CheckResultRow",
    "Database",
    "Journal",
    "RunEventRow",
    "RunRow",
    "TableWriter",
    "engine_url",
    "infer_type",
    "open_database",
    "store_error",
    "utcnow",
]
