"""Loading ``config.toml``: parse, interpolate, validate, compile to pipelines and connectors.

Structural mistakes (bad TOML, unknown top-level keys, a bad database URL) stop loading.
A connector or pipeline that is wrong on its own — a missing env var, a plugin that does
not import — is kept as an error and raised only when something uses it, so one broken
entry never stops the pipelines that do not need it. ``podium validate`` reports them all.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from podium.connectors import Connector, connector_class
from podium.pipeline import ConfigError, Duration, Fetch, Pipeline, PodiumError, Schedule

from ..alerts import AlertConfig, AlertRule, MaintenanceWindow, rules_for
from ._database_url import database_kind
from ._errors import config_error
from ._interpolate import ALERT_PLAIN_KEYS, interpolate
from ._monitors import MonitorConfig, monitor_connector, monitor_pipeline

DEFAULT_DATABASE_URL = "sqlite:///podium.db"


class DatabaseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    url: str = DEFAULT_DATABASE_URL


class JournalConfig(BaseModel):
    """``[journal]``: how long a run's lease lasts, and what is kept how long."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    # A run renews its lease every lease/5; a run that has not for this long has lost its
    # owner and is marked interrupted by whoever opens the journal next.
    lease: Duration = timedelta(seconds=15)
    keep_dead_letters: Duration = timedelta(days=30)

    @field_validator("lease")
    @classmethod
    def _lease_range(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError("lease must be between 1s and 1h")
        return value


class HistoryConfig(BaseModel):
    """``[history]``: how long runs and check results are kept in full, and how long
    their hourly summaries (uptime, response times) outlive them."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    keep: Duration = timedelta(days=30)
    keep_summaries: Duration = timedelta(days=400)

    @field_validator("keep", "keep_summaries")
    @classmethod
    def _at_least_a_day(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1):
            raise ValueError("keep at least 1d (uptime is summarised over 24h, 7d and 30d)")
        return value


class LimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    # Requests in flight across all connectors of a run.
    concurrency: int = Field(default=64, ge=1, le=10_000)


class _TopLevel(BaseModel):
    """The file's shape; connector and pipeline tables are validated one by one later."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    connectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    pipelines: dict[str, dict[str, Any]] = Field(default_factory=dict)
    monitors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = Field(default_factory=dict)
    maintenance: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Owned by the scheduler daemon (jobs/); accepted here so one file configures both.
    scheduler: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Config:
    path: Path
    database: DatabaseConfig
    limits: LimitsConfig
    # The [scheduler] table, or why its ${ENV} could not be resolved (see ``scheduler``).
    scheduler_table: dict[str, Any] | ConfigError
    journal: JournalConfig = field(default_factory=JournalConfig)
    connectors: dict[str, Connector | PodiumError] = field(default_factory=dict)
    pipelines: dict[str, Pipeline | PodiumError] = field(default_factory=dict)
    # Pipelines whose table has a schedule, valid or not: the daemon refuses to start
    # with one of them broken rather than silently never fire it.
    scheduled: set[str] = field(default_factory=set)
    # Values taken from the environment for keys that may hold credentials: runs mask them.
    secrets: set[str] = field(default_factory=set)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    alerts: dict[str, AlertConfig | PodiumError] = field(default_factory=dict)
    maintenance: dict[str, MaintenanceWindow] = field(default_factory=dict)
    # Pipelines compiled from [monitors.NAME] tables.
    monitors: set[str] = field(default_factory=set)
    # Each valid pipeline's alert rules (its runs', its checks', the default alerts').
    rules: dict[str, list[AlertRule]] = field(default_factory=dict)

    @property
    def scheduler(self) -> dict[str, Any]:
        """The daemon's [scheduler] table. A variable it needs that is not set (its
        ``token = "${PODIUM_TOKEN}"``) is an error only for what uses it — the daemon,
        its control commands, ``validate`` — not for ``podium runs`` on a laptop that
        reads the journal and has no token."""
        if isinstance(self.scheduler_table, ConfigError):
            raise self.scheduler_table
        return self.scheduler_table

    @property
    def schedules(self) -> dict[str, Schedule]:
        """The schedule of every valid pipeline that has one (what the daemon fires)."""
        return {
            name: entry.schedule
            for name, entry in self.pipelines.items()
            if isinstance(entry, Pipeline) and entry.schedule is not None
        }

    def pipeline(self, name: str) -> Pipeline:
        entry = self.pipelines.get(name)
        if entry is None:
            known = ", ".join(self.pipelines) or "none"
            raise ConfigError(f"no pipeline {name!r} in {self.path} (pipelines: {known})")
        if isinstance(entry, PodiumError):
            raise entry
        return entry

    def connectors_for(self, pipeline: Pipeline) -> dict[str, Connector]:
        out: dict[str, Connector] = {}
        for name in sorted(pipeline.connectors()):
            entry = self.connectors[name]
            if isinstance(entry, PodiumError):
                raise entry
            out[name] = entry

        return out

    def alert(self, name: str) -> AlertConfig:
        entry = self.alerts.get(name)
        if entry is None:
            known = ", ".join(self.alerts) or "none"
            raise ConfigError(f"no alert {name!r} in {self.path} (alerts: {known})")
        if isinstance(entry, PodiumError):
            raise entry
        return entry

    def valid_alerts(self) -> dict[str, AlertConfig]:
        return {n: a for n, a in self.alerts.items() if isinstance(a, AlertConfig)}

    def problems(self) -> list[PodiumError]:
        return [
            e
            for e in (*self.alerts.values(), *self.connectors.values(), *self.pipelines.values())
            if isinstance(e, PodiumError)
        ]


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    env = os.environ if env is None else env
    raw = read_toml(path)
    top_level = {k: v for k, v in raw.items() if k not in (*_ENTRY_TABLES, "scheduler")}
    secrets: set[str] = set()
    resolved_top = interpolate(top_level, env, "", secrets)
    scheduler: dict[str, Any] | ConfigError
    try:
        scheduler = interpolate(raw.get("scheduler", {}), env, "scheduler", secrets)
    except ConfigError as exc:
        scheduler = ConfigError(exc.message, where=f"{path}: {exc.where}" if exc.where else None)
    try:
        top = _TopLevel.model_validate(
            {**resolved_top, **{key: raw.get(key, {}) for key in _ENTRY_TABLES}}
        )
    except ValidationError as exc:
        raise config_error(exc, path, "", _TopLevel) from None
    try:
        kind = database_kind(top.database.url)
    except ConfigError as exc:
        raise ConfigError(exc.message, where=f"{path}: database.url") from None
    database = top.database
    if kind == "sqlite":
        database = DatabaseConfig(url=sqlite_beside(top.database.url, path.resolve().parent))
    config = Config(
        path, database, top.limits, scheduler, top.journal, secrets=secrets, history=top.history
    )
    for name, table in top.alerts.items():
        config.alerts[name] = _guard(_alert, name, table, env, path, secrets)
    for name, table in top.maintenance.items():
        config.maintenance[name] = _maintenance(name, table, env, path, config)
    for name, table in top.connectors.items():
        config.connectors[name] = _guard(_connector, name, table, env, path, secrets)
    for name, table in top.pipelines.items():
        if "schedule" in table:
            config.scheduled.add(name)
        config.pipelines[name] = _guard(_pipeline, name, table, env, path, config)
    for name, table in top.monitors.items():
        config.scheduled.add(name)
        config.monitors.add(name)
        config.pipelines[name] = _guard(_monitor, name, table, env, path, config)
    for name, entry in config.pipelines.items():
        if isinstance(entry, Pipeline):
            config.pipelines[name] = _guard(_attach_rules, entry, path, config)
    return config


# Tables of named entries, each validated on its own (one broken entry breaks only what
# uses it).
_ENTRY_TABLES = ("connectors", "pipelines", "monitors", "alerts", "maintenance")


def sqlite_beside(url: str, folder: Path) -> str:
    """A relative SQLite path names a file in the config's folder, wherever the command
    runs (``podium runs --config elsewhere/config.toml`` reads elsewhere/podium.db)."""
    scheme, _, rest = url.partition(":///")
    path, query_sep, query = rest.partition("?")
    if not path or path.startswith("/") or path == ":memory:":
        return url
    return f"{scheme}:///{folder / path}{query_sep}{query}"


def _alert(
    name: str, table: dict[str, Any], env: Mapping[str, str], path: Path, secrets: set[str]
) -> AlertConfig:
    where = f"alerts.{name}"
    try:
        resolved = interpolate(table, env, where, secrets, ALERT_PLAIN_KEYS)
    except ConfigError as exc:
        raise ConfigError(exc.message, where=f"{path}: {exc.where}") from None
    try:
        return AlertConfig.model_validate(resolved)
    except ValidationError as exc:
        raise config_error(exc, path, where, AlertConfig) from None


def _maintenance(
    name: str, table: dict[str, Any], env: Mapping[str, str], path: Path, config: Config
) -> MaintenanceWindow:
    """A broken window stops loading: silently not silencing is worse than not starting."""
    where = f"maintenance.{name}"
    try:
        window = MaintenanceWindow.model_validate(interpolate(table, env, where))
    except ConfigError as exc:
        raise ConfigError(exc.message, where=f"{path}: {exc.where}") from None
    except ValidationError as exc:
        raise config_error(exc, path, where, MaintenanceWindow) from None
    for i, alert in enumerate(window.alerts):
        if alert not in config.alerts:
            known = ", ".join(config.alerts) or "none"
            raise ConfigError(
                f"unknown alert {alert!r} (alerts: {known})", where=f"{path}: {where}.alerts[{i}]"
            )
    return window


def _monitor(
    name: str, table: dict[str, Any], env: Mapping[str, str], path: Path, config: Config
) -> Pipeline:
    where = f"monitors.{name}"
    if name in config.pipelines and name not in config.monitors:
        raise ConfigError(
            f"a pipeline is also named {name!r}: monitors and pipelines share one namespace",
            where=f"{path}: {where}",
        )
    try:
        resolved = interpolate(table, env, where, config.secrets)
    except ConfigError as exc:
        raise ConfigError(exc.message, where=f"{path}: {exc.where}") from None
    try:
        monitor = MonitorConfig.model_validate(resolved)
        pipeline = monitor_pipeline(name, monitor)
    except ValidationError as exc:
        raise config_error(exc, path, where, MonitorConfig) from None
    connector = monitor_connector(name, monitor)
    if connector is not None:
        config.connectors[connector.name] = connector
    else:
        entry = config.connectors.get(monitor.connector_name(name))
        if entry is None:
            known = ", ".join(n for n in config.connectors if not n.startswith("monitor.")) or (
                "none defined"
            )
            raise ConfigError(
                f"unknown connector {monitor.connector!r} (connectors: {known})",
                where=f"{path}: {where}.connector",
            )
    return pipeline


def _attach_rules(pipeline: Pipeline, path: Path, config: Config) -> Pipeline:
    """Settle the pipeline's alert rules; a pipeline naming a broken alert is broken."""
    monitor = pipeline.name in config.monitors
    table = "monitors" if monitor else "pipelines"
    where = f"{table}.{pipeline.name}."
    try:
        rules = rules_for(pipeline, config.valid_alerts(), monitor=monitor, where=where)
    except ConfigError as exc:
        broken = _broken_alert(exc, config)
        raise ConfigError(broken or exc.message, where=f"{path}: {exc.where}") from None
    config.rules[pipeline.name] = rules
    return pipeline


def _broken_alert(exc: ConfigError, config: Config) -> str | None:
    """For an attachment naming an alert that exists but is invalid: say that instead."""
    for name, entry in config.alerts.items():
        if isinstance(entry, PodiumError) and f"unknown alert {name!r}" in exc.message:
            return f"alert {name!r} is invalid: {entry}"
    return None


def _guard(build: Any, *args: Any) -> Any:
    try:
        return build(*args)
    except PodiumError as exc:
        return exc


def read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML, or the one-line ConfigError ``podium validate`` gives."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            "save the file as UTF-8"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    if not raw:
        raise ConfigError(
            f"{path} is empty: define a [pipelines.NAME] table (podium's own config.toml "
            "is an example to start from)"
        )
    return raw


def _connector(
    name: str, table: dict[str, Any], env: Mapping[str, str], path: Path, secrets: set[str]
) -> Connector:
    where = f"connectors.{name}"
    try:
        resolved = interpolate(table, env, where, secrets)
    except ConfigError as exc:
        raise ConfigError(exc.message, where=f"{path}: {exc.where}") from None
    kind = resolved.get("kind")
    if not isinstance(kind, str):
        raise ConfigError("needs 'kind' (e.g. kind = \"http\")", where=f"{path}: {where}")
    try:
        cls = connector_class(kind)
    except PodiumError as exc:
        raise type(exc)(exc.message, where=f"{path}: {where}.kind") from None
    try:
        config = cls.Config.model_validate(resolved)
    except ValidationError as exc:
        raise config_error(exc, path, where, cls.Config) from None
    try:
        return cls(name, config)
    except Exception as exc:  # a plugin's constructor may raise anything
        raise ConfigError(
            f"connector kind {kind!r} failed to start: {type(exc).__name__}: {exc}",
            where=f"{path}: {where}",
        ) from None


def _pipeline(
    name: str, table: dict[str, Any], env: Mapping[str, str], path: Path, config: Config
) -> Pipeline:
    where = f"pipelines.{name}"
    try:
        resolved = interpolate(table, env, where, config.secrets)
    except ConfigError as exc:
        raise ConfigError(exc.message, where=f"{path}: {exc.where}") from None
    if "name" in resolved:
        raise ConfigError(
            "unknown key 'name' (the table's name is the pipeline's name)", where=f"{path}: {where}"
        )
    try:
        pipeline = Pipeline.model_validate(
            {**resolved, "name": name}, context={"base_dir": path.resolve().parent}
        )
    except ValidationError as exc:
        raise config_error(exc, path, where, Pipeline) from None
    for i, stage in enumerate(pipeline.stages):
        if not isinstance(stage, Fetch):
            continue
        stage_where = f"{path}: {where}.stages[{i}] ({stage.name})"
        entry = config.connectors.get(stage.connector)
        if entry is None:
            known = ", ".join(config.connectors) or "none defined"
            raise ConfigError(
                f"unknown connector {stage.connector!r} (connectors: {known})", where=stage_where
            )
        if isinstance(entry, Connector):
            try:
                entry.check_fetch(stage)
            except PodiumError as exc:
                raise ConfigError(exc.message, where=stage_where) from None
    return pipeline
