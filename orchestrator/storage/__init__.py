"""Storage: the database a run writes to, the tables it upserts into, and the journal."""

from ._checkpoints import Mark, Progress, commit_marks, page_item
from ._controls import Controls
from ._database import Database, engine_url, open_database, store_error
from ._history import hour_of
from ._journal import LEASE, MAX_EVENTS_PER_RUN, Journal
from ._monitoring import Monitoring
from ._rows import CheckResultRow, DeadLetterRow, RunEventRow, RunRow, SagaStepRow
from ._runs import add_stored, write_counts
from ._schema import COUNTS, JOURNAL_TABLES, RUN_STATUSES, RUN_TRIGGERS, utcnow
from ._tables import TableWriter, infer_type

__all__ = [
    "COUNTS",
    "JOURNAL_TABLES",
    "LEASE",
    "MAX_EVENTS_PER_RUN",
    "RUN_STATUSES",
    "RUN_TRIGGERS",
    "CheckResultRow",
    "Controls",
    "Database",
    "DeadLetterRow",
    "Journal",
    "Mark",
    "Monitoring",
    "Progress",
    "RunEventRow",
    "RunRow",
    "SagaStepRow",
    "TableWriter",
    "add_stored",
    "commit_marks",
    "engine_url",
    "hour_of",
    "infer_type",
    "open_database",
    "page_item",
    "store_error",
    "utcnow",
    "write_counts",
]
