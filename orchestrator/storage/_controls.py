"""Pauses and node heartbeats: the SQL, and the ``Controls`` facade over it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from ._control_schema import controls_table, nodes_table
from ._database import Database
from ._journal import Journal
from ._schema import as_dict, utcnow

CONTROLS, NODES = controls_table, nodes_table


def set_paused(
    conn: Connection, pipeline: str, paused: bool, reason: str | None, by: str | None, now: datetime
) -> bool:
    """Pause or resume ``pipeline``; whether that changed anything."""
    key = CONTROLS.c.pipeline == pipeline
    current = conn.execute(select(CONTROLS.c.paused).where(key).with_for_update()).first()
    values = {"paused": paused, "reason": reason, "by": by, "at": now}
    if current is None:
        if not paused:
            return False
        try:
            with conn.begin_nested():
                conn.execute(CONTROLS.insert().values(pipeline=pipeline, **values))
            return True
        except IntegrityError:  # paused by another node this very moment
            return False
    if bool(current[0]) == paused:
        return False
    conn.execute(update(CONTROLS).where(key).values(**values))
    return True


def select_paused(conn: Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(select(CONTROLS).where(CONTROLS.c.paused.is_(True)))
    return {r.pipeline: as_dict(r) for r in rows}


def beat(conn: Connection, values: dict[str, Any]) -> None:
    key = NODES.c.node_id == values["node_id"]
    if conn.execute(update(NODES).where(key).values(**values)).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(NODES.insert().values(**values))
    except IntegrityError:
        conn.execute(update(NODES).where(key).values(**values))


def select_nodes(conn: Connection, since: datetime) -> list[dict[str, Any]]:
    query = select(NODES).where(NODES.c.last_seen >= since).order_by(NODES.c.node_id)
    return [as_dict(r) for r in conn.execute(query)]


class Controls:
    """What people decided about pipelines (pauses), and which daemons are up."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self.journal = Journal(database)

    async def pause(self, pipeline: str, *, reason: str | None, by: str | None) -> bool:
        await self.journal.create_tables()
        return await self.db.run(
            "pausing a pipeline", set_paused, pipeline, True, reason, by, utcnow()
        )

    async def resume(self, pipeline: str, *, by: str | None = None) -> bool:
        await self.journal.create_tables()
        return await self.db.run(
            "resuming a pipeline", set_paused, pipeline, False, None, by, utcnow()
        )

    async def paused(self) -> dict[str, dict[str, Any]]:
        await self.journal.create_tables()
        return await self.db.run("reading paused pipelines", select_paused)

    async def beat(self, **values: Any) -> None:
        """Record this node as up now (``node_id``, ``host``, ``port``, …)."""
        await self.journal.create_tables()
        await self.db.run("recording the node's heartbeat", beat, {**values, "last_seen": utcnow()})

    async def nodes(self, within: timedelta) -> list[dict[str, Any]]:
        """The nodes seen within ``within``."""
        await self.journal.create_tables()
        return await self.db.run("reading the cluster's nodes", select_nodes, utcnow() - within)
