"""A run's progress, so a resumed run makes only what is missing.

A *mark* says that one fan-out item of a fetch stage has been carried to one of the
run's ends — to a store, in the same transaction as the rows it produced, or to a stage
that ends the run without storing. ``page`` counts the pages carried so far; ``done``
says the item's whole chain was; ``resume`` is where a paginated chain goes on.

Done items are kept as one list per commit (``podium_items_done``); a chain still going
on keeps one row per item (``podium_checkpoints``) with its resume point. The pages of a
parallel page set (known in advance, sent concurrently) are done items of their own,
named by ``page_item`` with the records each held, so a resume sends only the missing
pages and can still compare the chain's records with the API's stated total.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, select

from ._dialects import dialect_insert
from ._schema import checkpoints_table, items_done_table, utcnow


@dataclass(frozen=True, slots=True)
class Mark:
    """One item (or page of it) of a fetch stage, passed along with the batch it produced."""

    stage: str
    item: str
    page: int  # pages of this item's chain completed with this batch
    done: bool  # the chain is complete
    resume: dict[str, Any] | None = None  # where the chain goes on, when it is not done


# Item keys are "#<index>", digests and "<key>@<window start>", none holding a "|".
_PAGE_SEPARATOR = "|"


def page_item(item: str, page: int, records: int) -> str:
    """The done-item name of one page of ``item``'s parallel page set."""
    return f"{item}{_PAGE_SEPARATOR}{page}{_PAGE_SEPARATOR}{records}"


def _parse_page_item(name: str) -> tuple[str, int, int] | None:
    item, sep, rest = name.partition(_PAGE_SEPARATOR)
    page, sep2, records = rest.partition(_PAGE_SEPARATOR)
    if not (sep and sep2 and page.isdigit() and records.isdigit()):
        return None
    return item, int(page), int(records)


def commit_marks(conn: Connection, run_id: str, sink: str, marks: Iterable[Mark]) -> None:
    """Record what ``sink`` has carried: the done items as one list per stage, and the
    furthest page of each chain still going on."""
    done: dict[str, list[str]] = {}
    going: dict[tuple[str, str], Mark] = {}
    for mark in marks:
        if mark.done:
            done.setdefault(mark.stage, []).append(mark.item)
            going.pop((mark.stage, mark.item), None)
        elif mark.item not in done.get(mark.stage, ()):
            seen = going.get((mark.stage, mark.item))
            if seen is None or mark.page > seen.page:
                going[mark.stage, mark.item] = mark
    if done:
        conn.execute(
            _INSERT_DONE,
            [
                {"run_id": run_id, "stage": s, "sink": sink, "items": items}
                for s, items in done.items()
            ],
        )
    if going:
        _upsert_chains(conn, run_id, sink, list(going.values()))


_INSERT_DONE = items_done_table.insert()  # built once: it runs with every batch a store writes


def _upsert_chains(conn: Connection, run_id: str, sink: str, marks: list[Mark]) -> None:
    now = utcnow()
    rows = [
        {"run_id": run_id, "stage": m.stage, "item": m.item, "sink": sink, "pages": m.page,
         "resume": m.resume, "at": now}
        for m in marks
    ]  # fmt: skip
    conn.execute(_upsert_chain_statement(conn.dialect.name), rows)


# Built once per dialect: a sequential chain commits a page at a time, and building the
# upsert (its ``excluded`` columns) cost ~0.9 ms a page, more than the page's own rows.
_UPSERT_CHAIN: dict[str, Any] = {}


def _upsert_chain_statement(dialect: str) -> Any:
    stmt = _UPSERT_CHAIN.get(dialect)
    if stmt is None:
        table = checkpoints_table
        insert = dialect_insert(dialect)(table)
        excluded = insert.excluded
        stmt = _UPSERT_CHAIN[dialect] = insert.on_conflict_do_update(
            index_elements=[table.c.run_id, table.c.stage, table.c.item, table.c.sink],
            set_={"pages": excluded.pages, "resume": excluded.resume, "at": excluded.at},
            where=excluded.pages >= table.c.pages,  # a page count only grows
        )
    return stmt


def clear_progress(conn: Connection, run_id: str) -> None:
    """A finished run's progress matters no more."""
    conn.execute(sa.delete(checkpoints_table).where(checkpoints_table.c.run_id == run_id))
    conn.execute(sa.delete(items_done_table).where(items_done_table.c.run_id == run_id))


@dataclass(frozen=True, slots=True)
class Progress:
    """What a run had carried to its ends, by fetch stage and item."""

    # (stage, sink) → items done there
    done_items: dict[tuple[str, str], set[str]]
    # (stage, item) → sink → (pages, resume)
    chains: dict[tuple[str, str], dict[str, tuple[int, dict[str, Any] | None]]]
    # (stage, item) → sink → {page of its parallel set: the records it held}
    pages: dict[tuple[str, str], dict[str, dict[int, int]]]

    def done(self, stage: str, item: str, sinks: frozenset[str]) -> bool:
        return bool(sinks) and all(item in self.done_items.get((stage, s), ()) for s in sinks)

    def pages_done(self, stage: str, item: str, sinks: frozenset[str]) -> dict[int, int]:
        """The pages of ``item``'s parallel set that every end has, with their records."""
        reached = self.pages.get((stage, item))
        if not reached or not sinks:
            return {}
        common: dict[int, int] | None = None
        for sink in sinks:
            there = reached.get(sink, {})
            if common is None:
                common = dict(there)
            else:
                common = {page: n for page, n in common.items() if page in there}
        return common or {}

    def resume_point(self, stage: str, item: str, sinks: frozenset[str]) -> dict[str, Any] | None:
        """Where a partly carried chain goes on: the furthest page every end has reached.
        An end that already has the whole chain needs nothing more, and does not hold
        the others back."""
        reached = self.chains.get((stage, item), {})
        points = []
        for sink in sinks:
            if item in self.done_items.get((stage, sink), ()):
                continue
            if sink not in reached:
                return None  # this end has no page of it: the chain starts again
            points.append(reached[sink])
        if not points:
            return None
        pages = min(p for p, _resume in points)
        return next((resume for p, resume in points if p == pages and resume is not None), None)


def load_progress(conn: Connection, run_id: str) -> Progress:
    done: dict[tuple[str, str], set[str]] = {}
    pages: dict[tuple[str, str], dict[str, dict[int, int]]] = {}
    for row in conn.execute(select(items_done_table).where(items_done_table.c.run_id == run_id)):
        done.setdefault((row.stage, row.sink), set()).update(row.items)
        for name in row.items:
            parsed = _parse_page_item(name) if _PAGE_SEPARATOR in name else None
            if parsed is not None:
                item, page, records = parsed
                pages.setdefault((row.stage, item), {}).setdefault(row.sink, {})[page] = records
    chains: dict[tuple[str, str], dict[str, tuple[int, dict[str, Any] | None]]] = {}
    for row in conn.execute(select(checkpoints_table).where(checkpoints_table.c.run_id == run_id)):
        chains.setdefault((row.stage, row.item), {})[row.sink] = (row.pages, row.resume)
    return Progress(done, chains, pages)
