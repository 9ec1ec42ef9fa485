"""``podium_checkpoints``: how far a run got, so a resumed run makes only what is missing.

A *mark* says that one fan-out item of a fetch stage has been carried to one of the
run's ends — to a store, in the same transaction as the rows it produced, or to a stage
that ends the run without storing. ``pages`` counts the pages carried so far; ``done``
says the item's whole chain was; ``resume`` is where a paginated chain continues.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from ._schema import checkpoints_table, utcnow

NO_STORE = "-"  # the sink name of a mark committed by a run end that stores nothing


@dataclass(frozen=True, slots=True)
class Mark:
    """One item (or page of it) of a fetch stage, passed along with the batch it produced."""

    stage: str
    item: str
    page: int  # pages of this item's chain completed with this batch
    done: bool  # the chain is complete
    resume: dict[str, Any] | None = None  # where the chain goes on, when it is not done


def commit_marks(conn: Connection, run_id: str, sink: str, marks: Iterable[Mark]) -> None:
    """Record marks for ``sink``: a page count only grows, and done stays done."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    table, now = checkpoints_table, utcnow()
    latest: dict[tuple[str, str], Mark] = {}
    for mark in marks:  # the furthest mark per item wins
        seen = latest.get((mark.stage, mark.item))
        if seen is None or mark.done or (not seen.done and mark.page > seen.page):
            latest[mark.stage, mark.item] = mark
    for mark in latest.values():
        row = {
            "run_id": run_id,
            "stage": mark.stage,
            "item": mark.item,
            "sink": sink,
            "pages": mark.page,
            "done": mark.done,
            "resume": None if mark.done else mark.resume,
            "at": now,
        }
        stmt = insert(table).values(**row)
        excluded = stmt.excluded
        keep_done = table.c.done | excluded.done
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[table.c.run_id, table.c.stage, table.c.item, table.c.sink],
                set_={
                    "pages": excluded.pages,
                    "done": keep_done,
                    "resume": excluded.resume,
                    "at": excluded.at,
                },
                where=~table.c.done & (excluded.pages >= table.c.pages),
            )
        )


@dataclass(frozen=True, slots=True)
class Progress:
    """What a run had carried to its ends, by fetch stage and item."""

    # (stage, item) → sink → (pages, done, resume)
    marks: dict[tuple[str, str], dict[str, tuple[int, bool, dict[str, Any] | None]]]

    def done(self, stage: str, item: str, sinks: frozenset[str]) -> bool:
        reached = self.marks.get((stage, item), {})
        return bool(sinks) and all(reached.get(s, (0, False, None))[1] for s in sinks)

    def resume_point(self, stage: str, item: str, sinks: frozenset[str]) -> dict[str, Any] | None:
        """Where a partly carried chain goes on: the point every sink has reached."""
        reached = self.marks.get((stage, item), {})
        if not sinks or any(s not in reached for s in sinks):
            return None
        points = [reached[s] for s in sinks]
        pages = min(p for p, _done, _resume in points)
        for page, _done, resume in points:
            if page == pages and resume is not None:
                return resume
        return None

    def items_done(self, stage: str, sinks: frozenset[str]) -> set[str]:
        return {item for (s, item) in self.marks if s == stage and self.done(s, item, sinks)}


def load_progress(conn: Connection, run_id: str) -> Progress:
    table = checkpoints_table
    rows = conn.execute(select(table).where(table.c.run_id == run_id))
    marks: dict[tuple[str, str], dict[str, tuple[int, bool, dict[str, Any] | None]]] = {}
    for row in rows:
        marks.setdefault((row.stage, row.item), {})[row.sink] = (row.pages, row.done, row.resume)
    return Progress(marks)
