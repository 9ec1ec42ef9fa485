"""The daemon's configuration: ``[scheduler]`` and each pipeline's ``schedule`` table.

Both are validated here (pydantic, ``extra="forbid"``); errors name the key path. A
``Plan`` is everything the daemon needs from one ``config.toml``: it is built whole or
not at all, so a broken reload never replaces a working plan.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from podium.orchestrator import Config
from podium.pipeline import ConfigError, PodiumError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_NODE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def parse_duration(value: Any) -> timedelta:
    """``30`` (seconds), ``"90s"``, ``"5m"``, ``"1h30m"``, ``"250ms"`` → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))
    raise ValueError(f'not a duration: {value!r} (e.g. 30, "90s", "5m", "1h30m")')


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


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


class Schedule(BaseModel):
    """``schedule = { interval = "5m" }`` or ``{ cron = "0 * * * *", timezone = "…" }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str | None = None  # 5 fields, or 6 with seconds first
    interval: Duration | None = None
    timezone: str = "UTC"
    jitter: Duration = timedelta(0)
    start: datetime | None = None
    end: datetime | None = None
    paused: bool = False
    catch_up: Literal["skip", "once"] = "skip"
    overlap: Literal["skip", "queue", "parallel"] = "skip"
    timeout: Duration | None = None  # the run's time budget; else the pipeline's, else default

    @model_validator(mode="after")
    def _check(self) -> Schedule:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of 'cron' or 'interval'")
        if self.interval is not None and self.interval <= timedelta(0):
            raise ValueError("'interval' must be positive")
        if self.cron is not None and len(self.cron.split()) not in (5, 6):
            raise ValueError(f"'cron' needs 5 fields (or 6 with seconds first): {self.cron!r}")
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f'unknown time zone {self.timezone!r} (e.g. "Europe/Berlin")'
            ) from None
        if self.start and self.end and _aware(self.start, zone) >= _aware(self.end, zone):
            raise ValueError("'start' must be before 'end'")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def start_at(self) -> datetime | None:
        return _aware(self.start, self.zone) if self.start else None

    def end_at(self) -> datetime | None:
        return _aware(self.end, self.zone) if self.end else None

    def describe(self) -> str:
        what = f"cron {self.cron} {self.timezone}" if self.cron else f"every {self.interval}"
        return what + (" (paused)" if self.paused else "")


def _aware(value: datetime, zone: ZoneInfo) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=zone)


class SchedulerSettings(BaseModel):
    """The ``[scheduler]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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

    @model_validator(mode="after")
    def _check(self) -> SchedulerSettings:
        if self.url is not None and not self.url.startswith(("postgresql", "postgres:")):
            raise ValueError(
                "url must be a PostgreSQL URL (postgresql+asyncpg://…); leave it out for one "
                "node — SQLite stores lose schedules and run jobs twice"
            )
        if self.lease < timedelta(seconds=2) or self.cleanup <= timedelta(0):
            raise ValueError("lease must be at least 2s and cleanup positive")
        return self


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
    where = f"{config.path}: scheduler"
    try:
        settings = SchedulerSettings.model_validate(config.scheduler)
    except ValidationError as exc:
        raise _error(exc, where) from None
    schedules: dict[str, Schedule] = {}
    for name, table in config.schedules.items():
        where = f"{config.path}: pipelines.{name}.schedule"
        try:
            schedules[name] = Schedule.model_validate(table)
        except ValidationError as exc:
            raise _error(exc, where) from None
        entry = config.pipelines.get(name)
        if isinstance(entry, PodiumError):
            raise ConfigError(f"scheduled pipeline {name!r} is invalid: {entry}")
        try:
            config.connectors_for(config.pipeline(name))
        except PodiumError as exc:
            raise ConfigError(f"scheduled pipeline {name!r} cannot run: {exc}") from None
    return Plan(settings=settings, schedules=schedules, config=config)


def _error(exc: ValidationError, where: str) -> ConfigError:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key {err['loc'][-1]!r}"
    return ConfigError(message, where=f"{where}.{loc}" if loc else where)
