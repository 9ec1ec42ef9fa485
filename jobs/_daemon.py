"""``podium daemon``: fire scheduled pipelines until told to stop.

Ownership, outermost first: the run database → the service task group (signals, HTTP
endpoint) → the run pool's task group → the scheduler adapter. Stopping unwinds it in
that order reversed: the scheduler stops firing, running pipelines get ``grace`` seconds,
then they are cancelled and record ``interrupted``, then the endpoint closes, then the
database. A second SIGTERM/SIGINT cancels everything at once.
"""

from __future__ import annotations

import os
import random
import signal
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from loguru import logger

from podium.orchestrator import Database, Journal, load_config, open_database
from podium.orchestrator.engine import pipeline_hash
from podium.orchestrator.storage import Controls, Monitoring
from podium.pipeline import ConfigError, PipelineBusy, PodiumError, StoreError

from ._adapter import Fire, SchedulerAdapter, lateness, missed_fire
from ._control import hold_node, new_instance, runtime_dir, runtime_file, write_runtime
from ._http import Endpoint
from ._metrics import Metrics
from ._models import Plan, SchedulerSettings, build_plan, check_node_id, default_node_id
from ._operations import Operations
from ._pool import RunPool
from ._watchdog import Watchdog
from .web import Sources, StatusPages

EXIT_FORCED = 130
NODE_BEAT_SECONDS = 5.0
# Runs a daemon started (and may continue when their node is gone).
DAEMON_TRIGGERS = ("schedule", "catch_up", "manual", "api", "backfill")


class Daemon:
    def __init__(self, config_path: str | Path, *, node_id: str | None = None) -> None:
        self.config_path = Path(config_path)
        self.plan: Plan = build_plan(load_config(self.config_path))
        settings = self.plan.settings
        self.node_id = check_node_id(node_id or settings.node_id or default_node_id())
        self.instance = new_instance()
        self.metrics = Metrics()
        self.started_at = datetime.now(UTC)
        self.port: int | None = None
        self.forced = False
        self._stopping = anyio.Event()
        self._reload_lock = anyio.Lock()
        self._pool: RunPool | None = None
        self._adapter: SchedulerAdapter | None = None
        self._database: Database | None = None
        self.operations: Operations | None = None

    def stop(self) -> None:
        """Stop firing and wind down (what the first SIGTERM does)."""
        self._stopping.set()

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> int:
        """Run until stopped; 0 after a graceful stop, 130 after a forced one."""
        settings = self.plan.settings
        if settings.url is not None and self.plan.config.database.url.startswith("sqlite"):
            logger.warning(
                "[scheduler] url is shared but [database] url is SQLite: nodes on other "
                "machines cannot see each other's runs, so a fire may run once per machine"
            )
        directory = runtime_dir(self.config_path, settings.runtime_dir)
        # The node's lock comes first: a second daemon with this node id must stop here,
        # before it marks the first one's runs interrupted or touches its files.
        with hold_node(directory, self.node_id):
            return await self._run_locked(directory, task_status)

    async def _run_locked(self, directory: Path, task_status: Any) -> int:
        settings = self.plan.settings
        async with open_database(self.plan.config.database.url) as database:
            self._database = database
            journal = Journal(database, lease=self.plan.config.journal.lease)
            # Opening the journal reaps runs whose lease expired; a node restarted under
            # the same id also closes its previous process's runs at once.
            stale = await _retry_startup(journal.interrupt_node, self.node_id, os.getpid())
            if stale:
                logger.warning("marked {} run(s) left running by this node as interrupted", stale)
            pool = self._pool = RunPool(database, self.node_id, self.metrics, self.plan)
            self.metrics.watch_running(pool.running)
            self.operations = Operations(database, pool, lambda: self.plan, self.node_id)
            sources = Sources(database, lambda: self.plan, self.node_id, self._next_fires)
            pages = StatusPages(sources)
            endpoint = Endpoint(
                settings,
                instance=self.instance,
                status=self.status,
                metrics=self.metrics.render,
                reload=self._reload,
                operations=self.operations,
                pages=pages.mount,
            )
            info_path = runtime_file(directory, self.node_id)
            await self._close_removed(database, self.plan)
            async with anyio.create_task_group() as services:
                services.start_soon(self._signals, services.cancel_scope, name="daemon:signals")
                services.start_soon(self._take_over, journal, name="daemon:take-over")
                services.start_soon(self._notify, database, name="daemon:notify")
                watchdog = Watchdog(
                    database, lambda: self.plan, self.metrics.finished.follow_checks
                )
                # Its first look comes before the first fire (see Watchdog.serve).
                await services.start(watchdog.serve, name="daemon:watchdog")
                try:
                    self.port = await services.start(endpoint.serve, name="daemon:http")
                except OSError as exc:
                    raise _cannot_listen(directory, self.config_path, settings, exc) from None
                assert endpoint.access is not None
                info = {
                    "pid": os.getpid(),
                    "node_id": self.node_id,
                    "instance": self.instance,
                    "host": settings.host,
                    "port": self.port,
                    "config": str(self.config_path.resolve()),
                }
                if endpoint.access.ephemeral:
                    # No token configured: the command line on this machine writes with
                    # this one (the file is the user's alone, mode 0600).
                    info["token"] = endpoint.access.write_token
                write_runtime(info_path, info)
                services.start_soon(self._beat, database, name="daemon:beat")
                try:
                    await self._fire_until_stopped(pool, journal, task_status)
                finally:
                    info_path.unlink(missing_ok=True)
                    services.cancel_scope.cancel()
        logger.info("daemon {} stopped", self.node_id)
        return EXIT_FORCED if self.forced else 0

    async def _fire_until_stopped(self, pool: RunPool, journal: Journal, task_status: Any) -> None:
        settings = self.plan.settings
        async with pool.open():
            async with SchedulerAdapter(settings, self.node_id, self._on_fire) as adapter:
                self._adapter = adapter
                added = await adapter.reconcile(self.plan.schedules)
                await self._catch_up(journal, self.plan, added)
                await adapter.start()
                mode = "postgresql" if adapter.shared else "memory"
                logger.info(
                    "daemon {} firing {} schedule(s) ({} store), endpoint http://{}:{}",
                    self.node_id,
                    len(self.plan.schedules),
                    mode,
                    settings.host,
                    self.port,
                )
                task_status.started(self)
                await self._stopping.wait()
                self._adapter = None
            grace = self.plan.settings.grace.total_seconds()
            if any(pool.running().values()):
                logger.info("stopped firing; running pipelines have {:g}s to finish", grace)
            with anyio.move_on_after(grace):
                await pool.wait_idle()
            pool.cancel()

    async def _beat(self, database: Database) -> None:
        """Say every few seconds that this node is up (the page's cluster view)."""
        from podium import __version__

        controls = Controls(database)
        values = {
            "node_id": self.node_id,
            "host": self.plan.settings.host,
            "port": self.port,
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self.started_at,
            "stopped_at": None,
        }
        try:
            while not self._stopping.is_set():
                try:
                    await controls.beat(**values)
                except PodiumError as exc:
                    logger.warning("could not record the node's heartbeat: {}", exc)
                with anyio.move_on_after(NODE_BEAT_SECONDS):
                    await self._stopping.wait()
        finally:
            # The node is going: if this fails, its last heartbeat ages out on its own.
            with anyio.CancelScope(shield=True), anyio.move_on_after(3), suppress(PodiumError):
                await controls.beat(**{**values, "stopped_at": datetime.now(UTC)})

    async def _notify(self, database: Database) -> None:
        """Deliver the alert notifications runs queue (on any node), until cancelled."""
        from podium.orchestrator.notify import Dispatcher

        dispatcher = Dispatcher(database, lambda: self.plan.config, node=self.node_id)
        try:
            # Claims this node held when it died are free now, not when they expire.
            released = await dispatcher.monitoring.release_claims(self.node_id)
        except PodiumError as exc:
            released = 0
            logger.warning("could not release this node's earlier notifications: {}", exc)
        if released:
            logger.info(
                "{} notification(s) this node was sending when it stopped: sent again", released
            )
        await dispatcher.serve(
            lambda: [rule for rules in self.plan.config.rules.values() for rule in rules]
        )

    async def _close_removed(self, database: Database, plan: Plan) -> None:
        """Close the open incidents of monitors, checks, pipelines (or alerts) the config
        no longer has: nothing would ever resolve them. Quietly — nothing recovered, so
        no RESOLVED; the log says which."""
        rules = [rule for rules in plan.config.rules.values() for rule in rules]
        try:
            closed = await Monitoring(database).close_removed(rules)
        except PodiumError as exc:
            logger.warning("could not close the incidents of removed subjects: {}", exc)
            return
        for row in closed:
            logger.warning(
                "alert {!r}: closed the open incident {} of {}: it is no longer in the config",
                row["alert"],
                row["incident"],
                row["label"],
            )

    async def _take_over(self, journal: Journal) -> None:
        """Every few seconds: reap runs whose owner died, and continue interrupted fires.

        Reaping and claiming are single atomic updates, so with several nodes each
        abandoned run is marked once and each interrupted fire continued by one node.
        """
        every = max(1.0, journal.lease.total_seconds() / 3)
        while True:
            await anyio.sleep(every)
            if self._stopping.is_set():
                return
            try:
                for run in await journal.reap():
                    logger.bind(pipeline=run.pipeline).warning(
                        "run {} {}", run.id[:8], run.error or "was abandoned"
                    )
                await self._resume_interrupted(journal)
            except PodiumError as exc:  # the database is away: the next round tries again
                logger.warning("looking for abandoned runs failed: {}", exc)

    async def _resume_interrupted(self, journal: Journal) -> None:
        plan, pool = self.plan, self._pool
        if pool is None:
            return
        since = datetime.now(UTC) - plan.settings.resume_within
        candidates = await journal.runs(
            statuses=("interrupted",), triggers=DAEMON_TRIGGERS, finished_since=since, limit=20
        )
        for run in candidates:
            schedule = plan.schedules.get(run.pipeline)
            if schedule is None or schedule.resume != "auto" or schedule.paused:
                continue
            pipeline = plan.config.pipeline(run.pipeline)
            if run.pipeline_hash != pipeline_hash(pipeline, {**pipeline.params}):
                continue  # its definition changed: it cannot be continued, and stays as it is
            lock = run.pipeline if schedule.overlap != "parallel" else None
            try:
                claimed = await journal.claim(
                    run, node=self.node_id, pid=os.getpid(), lock_key=lock, cause="resume"
                )
            except PipelineBusy:
                continue  # a run of the pipeline is going: try again after it
            if claimed is None:
                continue  # another node was faster
            logger.bind(pipeline=run.pipeline).info(
                "taking over interrupted run {} (attempt {})", run.id[:8], claimed.attempt
            )
            due = claimed.scheduled_for or datetime.now(UTC)
            pool.submit(Fire(run.pipeline, claimed.scheduled_for, due, run.trigger, claimed))

    async def _signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    await self.reload()
                elif not self._stopping.is_set():
                    logger.info("{}: stopping (send it again to stop at once)", signum.name)
                    self._stopping.set()
                else:
                    logger.warning("{} again: cancelling running pipelines now", signum.name)
                    self.forced = True
                    if self._pool is not None:
                        self._pool.cancel()
                    scope.cancel()

    async def _on_fire(self, fire: Fire) -> None:
        pool, schedule = self._pool, self.plan.schedules.get(fire.pipeline)
        if pool is None or schedule is None or self._stopping.is_set():
            return
        if self._database is not None:
            try:
                paused = await Controls(self._database).paused()
            except PodiumError as exc:
                paused = {}
                logger.warning("could not read which pipelines are paused: {}", exc)
            if fire.pipeline in paused:
                self.metrics.skip(fire.pipeline, "paused")
                logger.bind(pipeline=fire.pipeline).info(
                    "fire {} skipped: the pipeline is paused",
                    (fire.scheduled_for or fire.due).isoformat(),
                )
                return
        late = lateness(fire)
        if schedule.catch_up == "skip" and late > self.plan.settings.misfire_after:
            self.metrics.skip(fire.pipeline, "missed")
            logger.bind(pipeline=fire.pipeline).info(
                "missed fire {} skipped ({:.0f}s late, catch_up = skip)",
                (fire.scheduled_for or fire.due).isoformat(),
                late.total_seconds(),
            )
            return
        pool.submit(fire)

    async def _catch_up(self, journal: Journal, plan: Plan, added: set[str]) -> None:
        """Run once for a fire missed while no daemon had this schedule (catch_up = once)."""
        assert self._pool is not None
        now = datetime.now(UTC)
        for name in sorted(added):
            schedule = plan.schedules[name]
            if schedule.catch_up != "once" or schedule.paused:
                continue
            since = await journal.last_fire(name)
            if since is None:
                continue
            missed = missed_fire(schedule, since, now)
            if missed is not None:
                logger.bind(pipeline=name).info("catching up the missed fire of {}", missed)
                self._pool.submit(Fire(name, missed, now, "catch_up"))

    async def reload(self) -> bool:
        """Re-read the config; on any mistake keep the running plan and log one line."""
        return await self._reload() is None

    async def _reload(self) -> str | None:
        """``reload``, answering why not (None: reloaded); POST /reload reports it."""
        async with self._reload_lock:
            adapter, pool = self._adapter, self._pool
            if adapter is None or pool is None or self._stopping.is_set():
                return "the daemon is starting or stopping"
            try:
                plan = build_plan(load_config(self.config_path))
            except PodiumError as exc:
                self.metrics.reload("rejected")
                logger.error("reload rejected, the running schedules stay: {}", exc)
                return str(exc)
            restart_only = [
                key
                for key in ("url", "node_id", "host", "port", "runtime_dir")
                if getattr(plan.settings, key) != getattr(self.plan.settings, key)
            ]
            if plan.config.database.url != self.plan.config.database.url:
                restart_only.append("database.url")
            if restart_only:
                logger.warning("reload: {} change(s) need a restart", ", ".join(restart_only))
            old = self.plan.schedules
            pool.install(plan)
            self.plan = plan
            added = await adapter.reconcile(plan.schedules)
            assert self._database is not None
            await self._close_removed(self._database, plan)
            await self._catch_up(Journal(self._database), plan, added)
            changed = sum(
                1 for n in plan.schedules.keys() & old.keys() if plan.schedules[n] != old[n]
            )
            self.metrics.reload("ok")
            logger.info(
                "reloaded {}: {} schedule(s), {} added, {} changed, {} removed",
                self.config_path,
                len(plan.schedules),
                len(plan.schedules.keys() - old.keys()),
                changed,
                len(old.keys() - plan.schedules.keys()),
            )
            return None

    async def _next_fires(self) -> dict[str, datetime | None]:
        """The scheduler's next fire of each schedule (the status page). With a shared
        data store this node's scheduler knows every node's schedules."""
        adapter = self._adapter
        if adapter is None:
            return {}
        return {name: state.next_fire for name, state in (await adapter.states()).items()}

    async def status(self) -> dict[str, Any]:
        plan, pool, adapter = self.plan, self._pool, self._adapter
        states = await adapter.states() if adapter is not None else {}
        running = pool.running() if pool is not None else {}
        backfilling = pool.backfilling if pool is not None else {}
        pipelines = []
        journal = Journal(self._database) if self._database is not None else None
        paused = await Controls(self._database).paused() if self._database is not None else {}
        for name, schedule in plan.schedules.items():
            state = states.get(name)
            last = await journal.runs(name, 1) if journal is not None else []
            run = last[0] if last else None
            is_paused = schedule.paused or name in paused
            # A paused pipeline's fires are skipped: the scheduler's next one is not its
            # next run (the status page says null too).
            next_fire = None if is_paused or state is None else state.next_fire
            pipelines.append(
                {
                    "name": name,
                    "schedule": schedule.describe(),
                    "paused": is_paused,
                    "paused_by_hand": name in paused,
                    "paused_reason": paused.get(name, {}).get("reason"),
                    "backfill_pending": backfilling.get(name, 0),
                    "overlap": schedule.overlap,
                    "catch_up": schedule.catch_up,
                    "next_fire": _iso(next_fire),
                    "running": running.get(name, 0),
                    "last_run": None
                    if run is None
                    else {
                        "id": run.id,
                        "status": run.status,
                        "scheduled_for": _iso(run.scheduled_for),
                        "started_at": _iso(run.started_at),
                        "finished_at": _iso(run.finished_at),
                        "trigger": run.trigger,
                        "node": run.node,
                        "stored": run.stored,
                    },
                }
            )
        return {
            "node_id": self.node_id,
            "instance": self.instance,
            "pid": os.getpid(),
            "mode": "postgresql" if plan.settings.url else "memory",
            "started_at": _iso(self.started_at),
            "stopping": self._stopping.is_set(),
            "pipelines": pipelines,
        }


async def _retry_startup(fn: Any, *args: Any) -> Any:
    """Nodes starting together race to create podium's tables; the loser tries again."""
    for attempt in range(1, 6):
        try:
            return await fn(*args)
        except StoreError:
            if attempt == 5:
                raise
            await anyio.sleep(0.2 * attempt + random.random() * 0.3)
    raise AssertionError("unreachable")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _cannot_listen(
    directory: Path, config: Path, settings: SchedulerSettings, exc: OSError
) -> ConfigError:
    """One line for an endpoint that cannot bind: which address, and who holds it when a
    runtime file of this config says so (a hint: the file may be stale)."""
    from ._control import read_runtime_files

    port = settings.port
    where = f"{settings.host}:{port}"
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    holders = [
        info
        for info in read_runtime_files(directory)
        if info.get("port") == port and _alive(info.get("pid"))
    ]
    if holders:
        info = holders[0]
        hint = (
            f"node {info.get('node_id')!r} of this config (pid {info.get('pid')}) is already "
            f"running there — see: podium status --config {config}"
        )
    else:
        hint = "stop what listens there, or set [scheduler] port to a free one (0 picks one)"
    return ConfigError(f"the daemon cannot listen on {where}: {reason}; {hint}")


def _alive(pid: Any) -> bool:
    """Whether a process with this pid exists (signal 0 only checks; nothing is sent)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def run_daemon(config_path: str | Path, *, node_id: str | None = None) -> int:
    """Build and run a daemon; configuration mistakes raise before anything starts."""
    return await Daemon(config_path, node_id=node_id).run()
