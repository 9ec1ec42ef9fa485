"""The run journal: what podium knows about its runs, on the database runs write to.

``Journal`` is the one way the engine, the daemon and the command line read and write
it; the SQL lives beside it, one module per concern (``_runs``, ``_state``,
``_checkpoints``, ``_dead_letters``, ``_saga``), the tables in ``_schema``.

Opening the journal reaps: any run still ``running`` whose lease has expired lost its
owner (a kill, a crash, a lost network) and is marked ``interrupted`` with the cause, by
whichever process opens the journal first — a ``podium run``, ``podium runs`` or any
daemon node — so no run stays ``running`` after its owner died.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from podium.pipeline import (
    DuplicateFire,
    DuplicateTrigger,
    PipelineBusy,
    RunNotFound,
)

from ..alerts import AlertRule, Outcome
from . import _checkpoints, _dead_letters, _history, _runs, _saga, _state
from ._checkpoints import Mark, Progress
from ._database import Database
from ._rows import (
    CheckResultRow,
    DeadLetterRow,
    RunEventRow,
    RunRow,
    SagaStepRow,
    row_values,
)
from ._schema import create_tables, utcnow

# A run renews its lease with every heartbeat (every few seconds); one that has not for
# this long has lost its owner.
LEASE = timedelta(seconds=15)
# A run keeps at most this many detailed events; the counts stay exact beyond it.
MAX_EVENTS_PER_RUN = 500


class Journal:
    """Reads and writes the journal tables of one database."""

    def __init__(self, database: Database, *, lease: timedelta = LEASE) -> None:
        self.db = database
        self.lease = lease

    async def create_tables(self) -> None:
        """Create (or bring up to date) podium's tables, and reap abandoned runs — once
        per database per process; a daemon reaps again on its own schedule."""
        if not self.db.journal_ready:
            await self.db.run("creating podium's journal tables", create_tables)
            self.db.journal_ready = True
            await self.reap()

    # -- runs -------------------------------------------------------------------------------
    async def start(self, run: RunRow) -> None:
        """Insert the run's row. Raises DuplicateFire when its fire already ran,
        DuplicateTrigger when its idempotency key started a run before, PipelineBusy when
        another run of the pipeline holds the overlap lock the run asks for."""
        await self.create_tables()
        run.lease_expires_at = utcnow() + self.lease
        conflict = await self.db.run("recording the run start", _runs.insert_run, row_values(run))
        if conflict is None:
            return
        if conflict == "fire":
            raise DuplicateFire(run.pipeline, run.scheduled_for)
        key = run.lock_key if conflict == "lock" else run.idempotency_key
        other = await self.db.run(
            "reading the run that holds a key", _runs.holder, run.pipeline, conflict, key
        )
        other_id = str(other["id"]) if other else "?"
        if conflict == "lock":
            raise PipelineBusy(run.pipeline, other_id)
        raise DuplicateTrigger(run.pipeline, str(run.idempotency_key), other_id)

    async def heartbeat(self, run: RunRow) -> str:
        """Renew the run's lease and write its counters as they are now: ``mine``;
        ``lost`` when the run is no longer this process's (it was reaped, or taken over
        elsewhere); ``cancel`` when a cancel was requested for it."""
        now = utcnow()
        run.heartbeat_at, run.lease_expires_at = now, now + self.lease
        values = _runs.live_counts(run)
        values |= {"heartbeat_at": now, "lease_expires_at": now + self.lease}
        return await self.db.run(
            "recording the run's progress", _runs.heartbeat, run.id, run.attempt, values
        )

    async def finish(
        self,
        run: RunRow,
        events: list[RunEventRow],
        checks: list[CheckResultRow],
        state: dict[str, Any] | None = None,
        dead_letters: list[DeadLetterRow] | None = None,
        *,
        outcomes: list[tuple[AlertRule, Outcome]] | None = None,
        history: list[CheckResultRow] | None = None,
    ) -> list[int] | None:
        """Complete the run's row, with everything recorded alongside it — events,
        checks, dead letters, marks, check history, alert transitions — in one
        transaction. The ids of the notifications it queued; None (nothing written) when
        the row is no longer this attempt's."""
        values = row_values(run)
        values["lock_key"] = None
        values["lease_expires_at"] = None
        return await self.db.run(
            "recording the run result",
            _runs.finish_run,
            values,
            [row_values(e) for e in events],
            [row_values(c) for c in checks],
            state or {},
            [row_values(d) for d in dead_letters or []],
            outcomes,
            [row_values(c) for c in history or []],
        )

    async def request_cancel(self, run_id: str) -> RunRow:
        """Ask run ``run_id`` (an id or unique prefix) to stop; the run as it was. Its
        heartbeat, on whichever node it runs, stops it within a few seconds."""
        run, _events, _checks = await self.run(run_id)
        await self.db.run("requesting a cancel", _runs.request_cancel, run.id, utcnow())
        return run

    async def reap(self) -> list[RunRow]:
        """Mark interrupted every run whose lease expired; the runs this call reaped."""
        rows = await self.db.run(
            "closing abandoned runs", _runs.reap_abandoned, utcnow(), self.lease
        )
        return [RunRow.model_validate(r) for r in rows]

    async def interrupt_node(self, node: str, pid: int) -> int:
        """A restarted node's runs from its previous process, interrupted at once."""
        await self.create_tables()
        return await self.db.run(
            "closing a restarted node's runs", _runs.interrupt_node, node, pid, utcnow()
        )

    async def claim(
        self, run: RunRow, *, node: str, pid: int, lock_key: str | None, cause: str
    ) -> RunRow | None:
        """Take interrupted ``run`` over for a new attempt, owned by ``node``/``pid``;
        None when another process claimed it first. Raises PipelineBusy when another run
        of the pipeline holds its overlap lock now (try again after it)."""
        now = utcnow()
        history = [*run.attempts, _attempt_record(run, resumed_at=now)]
        values = {
            "status": "running",
            "node": node,
            "pid": pid,
            "attempt": run.attempt + 1,
            "attempts": history,
            "lease_expires_at": now + self.lease,
            "heartbeat_at": now,
            "finished_at": None,
            "error": None,
            "lock_key": lock_key,
        }
        claimed = await self.db.run(
            f"taking over run {run.id} ({cause})", _runs.claim, run.id, run.attempt, values
        )
        if claimed == "lock":
            raise PipelineBusy(run.pipeline, "?")
        if claimed is None or isinstance(claimed, str):
            return None
        return RunRow.model_validate(claimed)

    async def runs(
        self,
        pipeline: str | None = None,
        limit: int = 20,
        *,
        statuses: tuple[str, ...] = (),
        since: datetime | None = None,
        trigger: str | None = None,
        triggers: tuple[str, ...] = (),
        finished_since: datetime | None = None,
        offset: int = 0,
    ) -> list[RunRow]:
        """Runs newest first (skipping ``offset``); ``trigger`` matches a trigger or its
        kind (``daemon`` matches ``daemon:node-1``)."""
        await self.create_tables()
        query = _runs.RunQuery(
            pipeline, limit, statuses, since, trigger, triggers, finished_since, offset
        )
        rows = await self.db.run("reading runs", _runs.select_runs, query)
        return [RunRow.model_validate(r) for r in rows]

    async def run_counts(
        self, since: datetime | None = None, pipeline: str | None = None
    ) -> list[dict[str, Any]]:
        """Ended runs that started since ``since`` (in whole hours), counted by pipeline,
        node and status: rows of ``pipeline``, ``node``, ``status``, ``runs``. Read from
        the hourly summaries (``podium_run_hours``), however many runs there were."""
        await self.create_tables()
        return await self.db.run("counting runs", _history.select_run_counts, since, pipeline)

    async def count_runs(self, pipeline: str) -> int:
        """How many runs of ``pipeline`` the journal holds."""
        await self.create_tables()
        return await self.db.run("counting runs", _runs.count_runs, pipeline)

    async def latest_runs(self, pipelines: list[str], each: int) -> list[dict[str, Any]]:
        """The latest ``each`` runs of each of ``pipelines``, newest first, without their
        JSON columns (the status page's bars)."""
        await self.create_tables()
        return await self.db.run("reading the latest runs", _runs.latest_runs, pipelines, each)

    async def run(self, run_id: str) -> tuple[RunRow, list[RunEventRow], list[CheckResultRow]]:
        """A run by id or unique id prefix, with its events and check results."""
        await self.create_tables()
        found = await self.db.run("reading a run", _runs.select_run, run_id)
        if not found:
            raise RunNotFound(f"no run with id {run_id!r} (see: podium runs)")
        if len(found) > 1:
            raise RunNotFound(f"run id prefix {run_id!r} is ambiguous; give more characters")
        run, events, checks = found[0]
        return (
            RunRow.model_validate(run),
            [RunEventRow.model_validate(e) for e in events],
            [CheckResultRow.model_validate(c) for c in checks],
        )

    async def last_fire(self, pipeline: str) -> datetime | None:
        """The latest scheduled fire time recorded for ``pipeline`` (catch-up decisions)."""
        await self.create_tables()
        return await self.db.run("reading the last fire", _runs.last_fire, pipeline)

    async def fired(self, pipeline: str, times: list[datetime]) -> set[datetime]:
        await self.create_tables()
        return await self.db.run("reading fired slots", _runs.fired, pipeline, times)

    # -- state, progress ----------------------------------------------------------------------
    async def state(self, pipeline: str, keys: list[str]) -> dict[str, Any]:
        """Stored ``podium_state`` values of ``pipeline`` by key (absent keys left out)."""
        await self.create_tables()
        return await self.db.run("reading pipeline state", _state.select_state, pipeline, keys)

    async def state_like(self, pipeline: str, key: str) -> dict[str, Any]:
        """``key`` and its partitions' values (``key:…``) of ``pipeline``."""
        await self.create_tables()
        return await self.db.run("reading pipeline state", _state.select_state_like, pipeline, key)

    async def all_state(self, pipeline: str) -> list[dict[str, Any]]:
        await self.create_tables()
        return await self.db.run("reading pipeline state", _state.select_all_state, pipeline)

    async def set_state(self, pipeline: str, key: str, value: Any) -> None:
        await self.create_tables()
        await self.db.run("setting pipeline state", _state.set_state, pipeline, key, value)

    async def reset_state(self, pipeline: str, key: str | None = None) -> int:
        await self.create_tables()
        return await self.db.run("resetting pipeline state", _state.delete_state, pipeline, key)

    async def progress(self, run_id: str) -> Progress:
        await self.create_tables()
        return await self.db.run("reading a run's progress", _checkpoints.load_progress, run_id)

    async def commit_marks(self, run_id: str, sink: str, marks: list[Mark]) -> None:
        """Marks of a run end that stores nothing, in a transaction of their own."""
        await self.db.run(
            "recording the run's progress", _checkpoints.commit_marks, run_id, sink, marks
        )

    # -- dead letters ------------------------------------------------------------------------
    async def dead_letters(
        self, run_id: str | None = None, pipeline: str | None = None, limit: int = 100
    ) -> list[DeadLetterRow]:
        await self.create_tables()
        rows = await self.db.run(
            "reading dead letters", _dead_letters.select_dead_letters, run_id, pipeline, limit
        )
        return [DeadLetterRow.model_validate(r) for r in rows]

    async def mark_replayed(self, ids: list[int], replay_run: str) -> None:
        await self.db.run(
            "marking dead letters replayed", _dead_letters.mark_replayed, ids, replay_run
        )

    async def prune(self, *, dead_letters_before: datetime) -> int:
        await self.create_tables()
        return await self.db.run(
            "pruning dead letters", _dead_letters.prune_dead_letters, dead_letters_before
        )

    # -- saga -------------------------------------------------------------------------------
    async def record_step(
        self, run_id: str, stage: str, item: str, compensation: dict[str, Any]
    ) -> int:
        return await self.db.run(
            "recording a side effect", _saga.record_step, run_id, stage, item, compensation
        )

    async def steps_to_undo(self, run_id: str) -> list[SagaStepRow]:
        rows = await self.db.run("reading side effects to undo", _saga.steps_to_undo, run_id)
        return [SagaStepRow.model_validate(r) for r in rows]

    async def steps(self, run_id: str) -> list[SagaStepRow]:
        await self.create_tables()
        rows = await self.db.run("reading a run's side effects", _saga.all_steps, run_id)
        return [SagaStepRow.model_validate(r) for r in rows]

    async def settle_step(
        self, run_id: str, seq: int, status: str, attempts: int, error: str | None
    ) -> None:
        await self.db.run(
            "recording a compensation", _saga.settle_step, run_id, seq, status, attempts, error
        )


def _attempt_record(run: RunRow, *, resumed_at: datetime) -> dict[str, Any]:
    """What the journal keeps of an attempt that ended without finishing the run: who ran
    it, from when to when, why it ended, what it had done by its last heartbeat."""
    started = run.attempts[-1]["resumed_at"] if run.attempts else run.started_at.isoformat()
    return {
        "attempt": run.attempt,
        "node": run.node,
        "pid": run.pid,
        "started_at": started,
        "ended_at": (run.finished_at or resumed_at).isoformat(),
        "resumed_at": resumed_at.isoformat(),
        "cause": run.error,
        "requests": run.requests,
        "stored": run.stored,
    }
