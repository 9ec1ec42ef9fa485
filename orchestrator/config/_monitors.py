"""``[monitors.NAME]``: the short form of a monitoring pipeline, in five lines.

A monitor compiles into the same objects as any pipeline — a fetch named ``request``
whose answers are not read as records, and a response check named ``up`` holding the
conditions — so alerts, history, metrics and ``podium run NAME`` treat it alike. Given
a ``url``, it gets a connector of its own (``monitor.NAME``) that does not retry: a
monitor reports what each attempt saw, and its alert's thresholds do the smoothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from podium.connectors import Connector, TlsConfig, connector_class
from podium.pipeline import Attachments, Check, Duration, Fetch, Pipeline, RunPolicy, Schedule

DEFAULT_CONDITIONS = ["status == `200`"]


class MonitorConfig(BaseModel):
    """One ``[monitors.NAME]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    url: str | None = None
    connector: str | None = None
    path: str = ""
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    body: Any = None
    interval: Duration | None = None
    cron: str | None = None
    timezone: str = "UTC"
    paused: bool = False
    timeout: Duration = timedelta(seconds=10)
    conditions: list[str] = Field(default_factory=lambda: list(DEFAULT_CONDITIONS), min_length=1)
    alerts: Attachments | None = None
    description: str = ""
    # Only with url (a named connector has its own): certificate checking, retries.
    tls: TlsConfig | None = None
    retries: int = Field(default=0, ge=0, le=10)

    @model_validator(mode="after")
    def _target(self) -> MonitorConfig:
        if (self.url is None) == (self.connector is None):
            raise ValueError("give exactly one of 'url' or 'connector' (with 'path')")
        if self.url is not None:
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
            if self.path:
                raise ValueError("'path' goes with 'connector'; put it in the url")
        elif self.tls is not None or self.retries:
            raise ValueError("'tls' and 'retries' go with 'url'; a connector has its own")
        if (self.interval is None) == (self.cron is None):
            raise ValueError("give exactly one of 'interval' or 'cron'")
        if not timedelta(0) < self.timeout <= timedelta(hours=1):
            raise ValueError("timeout must be between 0 and 1h")
        return self

    def connector_name(self, name: str) -> str:
        return self.connector if self.connector is not None else f"monitor.{name}"


def monitor_connector(name: str, monitor: MonitorConfig) -> Connector | None:
    """The connector of a monitor given a ``url`` (None for one on a named connector)."""
    if monitor.url is None:
        return None
    seconds = monitor.timeout.total_seconds()
    cls = connector_class("http")
    config = cls.Config.model_validate(
        {
            "kind": "http",
            "timeout": seconds,
            "connect_timeout": min(seconds, 10.0),
            "concurrency": 1,
            "retry": {"attempts": monitor.retries + 1, "backoff": 0.5},
            "tls": monitor.tls or TlsConfig(),
        }
    )
    return cls(monitor.connector_name(name), config)


def monitor_pipeline(name: str, monitor: MonitorConfig, base_dir: Any = None) -> Pipeline:
    """The pipeline a monitor stands for."""
    fetch = Fetch(
        name="request",
        connector=monitor.connector_name(name),
        method=monitor.method,
        path=monitor.url or monitor.path,
        headers=monitor.headers,
        params=monitor.params,
        body=monitor.body,
        format="none",
    )
    check = Check.model_validate(
        {
            "name": "up",
            "kind": "check",
            "on": "responses",
            "expect": monitor.conditions,
            "alerts": monitor.alerts,
            "description": monitor.description,
        }
    )
    attempts = monitor.retries + 1
    schedule = Schedule(
        interval=monitor.interval,
        cron=monitor.cron,
        timezone=monitor.timezone,
        paused=monitor.paused,
        overlap="skip",
        # A probe interrupted with its node is not worth finishing: the next one will run.
        resume="never",
    )
    return Pipeline(
        name=name,
        description=monitor.description or f"monitor of {monitor.url or monitor.path}",
        stages=[fetch, check],
        # The check judges a monitor: an error answer is what it is there to see, and
        # its results are the history (a dead letter per failed probe would be noise).
        policy=RunPolicy(max_failed_ratio=1.0, dead_letters=False),
        timeout=monitor.timeout.total_seconds() * attempts + 30,
        schedule=schedule,
    )
