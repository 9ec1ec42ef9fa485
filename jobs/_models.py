"""The daemon's configuration: ``[scheduler]`` and each pipeline's ``schedule`` table.

Both are validated here (pydantic, ``extra="forbid"``); errors name the key path. A
``Plan`` is everything the daemon needs from one ``config.toml``: it is built whole or
not at all, so a broken reload never replaces a working plan.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from podium.orchestrator import Config
from podium.orchestrator.config import config_error
from podium.pipeline import ConfigError, Duration, PodiumError, Schedule

_NODE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def default_node_id(pid: int | None = None) -> str:
    """``<host name>-<pid>``: unique per process, so pods of one deployment (whose names
    share a long prefix) or two daemons on one host never take each other for themselves.
    A host name too long for an id is cut and marked with a hash of the whole."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()) or "node"
    if len(host) > 100:
        host = f"{host[:91]}-{hashlib.sha1(host.encode()).hexdigest()[:8]}"
    return f"{host}-{os.getpid() if pid is None else pid}"


def check_node_id(node_id: str) -> str:
    if not _NODE_ID.fullmatch(node_id):
        raise ConfigError(
            f"invalid node id {node_id!r}: use 1-128 letters, digits, '.', '_' or '-'",
            where="scheduler.node_id",
        )
    return node_id


class SchedulerSettings(BaseModel):
    """The ``[scheduler]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Empty: one node, schedules in memory. postgresql+asyncpg://…: shared by every node.
    url: str | None = None
    node_id: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)  # 0 picks a free port
    grace: Duration = timedelta(seconds=30)  # SIGTERM: how long running pipelines may finish
    default_timeout: Duration = timedelta(hours=1)  # a run's budget when nothing else sets one
    # A fire later than this is a missed fire: catch_up = "skip" drops it.
    misfire_after: Duration = timedelta(seconds=30)
    # Multi-node: a dead node's leases expire after `lease`; abandoned jobs are swept every
    # `cleanup` (APScheduler's defaults, 30 s / 15 min, let a crash stall a task for minutes).
    lease: Duration = timedelta(seconds=10)
    cleanup: Duration = timedelta(seconds=5)
    runtime_dir: str = ".podium"  # pid/port files, relative to the config file
    # Interrupted fires younger than this are taken over and resumed (resume = "auto").
    resume_within: Duration = timedelta(hours=1)
    # The endpoint's access. Writes (reload, trigger, pause, backfill, cancel, mute) need
    # `token`; reads need `read_token` (or `token`) when set, or when the endpoint listens
    # beyond loopback unless `public_reads`. Give both from the environment: ${PODIUM_TOKEN}.
    token: str | None = Field(default=None, min_length=16)
    read_token: str | None = Field(default=None, min_length=16)
    public_reads: bool = False
    # How people (or a proxy) reach the endpoint, e.g. https://podium.example.com: its
    # Host and Origin are accepted, besides the address it listens on.
    public_url: str | None = None

    @model_validator(mode="after")
    def _check(self) -> SchedulerSettings:
        if self.url is not None and not self.url.startswith(("postgresql", "postgres:")):
            raise ValueError(
                "url must be a PostgreSQL URL (postgresql+asyncpg://…); leave it out for one "
                "node — SQLite stores lose schedules and run jobs twice"
            )
        if self.lease < timedelta(seconds=2) or self.cleanup <= timedelta(0):
            raise ValueError("lease must be at least 2s and cleanup positive")
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("public_url must be an http:// or https:// URL with a host")
        return self

    @property
    def loopback(self) -> bool:
        """Whether the endpoint listens on this machine only."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Plan(BaseModel):
    """What one config file asks of the daemon."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    settings: SchedulerSettings
    schedules: dict[str, Schedule]
    config: Config

    def budget(self, pipeline: str) -> float:
        schedule = self.schedules[pipeline]
        if schedule.timeout is not None:
            return schedule.timeout.total_seconds()
        timeout = self.config.pipeline(pipeline).timeout
        return timeout if timeout is not None else self.settings.default_timeout.total_seconds()


def build_plan(config: Config) -> Plan:
    """Validate the daemon's parts of ``config``; one ConfigError naming the key path."""
    try:
        settings = SchedulerSettings.model_validate(config.scheduler)
    except ValidationError as exc:
        raise config_error(exc, config.path, "scheduler", SchedulerSettings) from None
    if not settings.loopback and settings.token is None:
        raise ConfigError(
            f"the endpoint would listen on {settings.host}, beyond this machine, with no "
            'token: anyone who reaches it could run pipelines. Set token = "${PODIUM_TOKEN}" '
            "(and export PODIUM_TOKEN), or listen on 127.0.0.1",
            where=f"{config.path}: scheduler.host",
        )
    for name in sorted(config.scheduled):
        entry = config.pipelines.get(name)
        if isinstance(entry, PodiumError):
            raise ConfigError(f"scheduled pipeline {name!r} is invalid: {entry}")
    check_alerts(config)
    schedules = config.schedules
    for name, schedule in schedules.items():
        try:
            config.connectors_for(config.pipeline(name))
        except PodiumError as exc:
            raise ConfigError(f"scheduled pipeline {name!r} cannot run: {exc}") from None
        check_trigger(schedule, where=f"{config.path}: pipelines.{name}.schedule")
    return Plan(settings=settings, schedules=schedules, config=config)


def check_alerts(config: Config) -> None:
    """A daemon does not start with an alert that cannot notify: a broken one, or an
    Apprise URL that Apprise cannot use (silence would pass for all-clear)."""
    from podium.orchestrator.notify import check_urls

    for name, entry in config.alerts.items():
        if isinstance(entry, PodiumError):
            raise entry
        problems = check_urls(entry)
        if problems:
            raise ConfigError("; ".join(problems), where=f"{config.path}: alerts.{name}")


def check_trigger(schedule: Schedule, *, where: str) -> None:
    """The scheduler library's own verdict on the schedule: it refuses some cron syntax
    croniter accepts (``L``, ``W``, ``#``) and crashes on a few values (a weekday 8)."""
    from ._adapter import make_trigger  # the scheduler library loads with the daemon only

    try:
        make_trigger(schedule, datetime.now(UTC))
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"the scheduler cannot use cron {schedule.cron!r}: {text}", where=f"{where}.cron"
        ) from None
