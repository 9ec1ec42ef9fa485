"""Alert rules: each attachment of an alert to a check or to a pipeline's runs, with
every threshold settled (the attachment's own, else the alert's defaults).

A rule names its *subject* — ``check:PIPELINE/CHECK`` or ``run:PIPELINE`` — which with
the alert's name keys the incident state in the journal: two alerts on one check keep
two states, and renaming a check starts a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from podium.pipeline import DEFAULT_RUN_EVENTS, AlertAttachment, Check, ConfigError, Pipeline

from ._models import AlertConfig

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AlertRule:
    alert: str
    subject: str
    # What people read: "check demo/plausible", "monitor api-health", "run nightly".
    label: str
    pipeline: str
    check: str | None  # None: the rule is about the pipeline's runs
    on: frozenset[str]  # run endings that count as failures (run rules only)
    failure_threshold: int
    success_threshold: int
    send_on_resolved: bool
    repeat: timedelta | None
    description: str
    # A notification not delivered by then (after its retries) is recorded as failed.
    give_up_after: timedelta = timedelta(hours=1)

    @property
    def watches_missed(self) -> bool:
        return self.check is None and "missed" in self.on


def check_subject(pipeline: str, check: str) -> str:
    return f"check:{pipeline}/{check}"


def run_subject(pipeline: str) -> str:
    return f"run:{pipeline}"


def rules_for(
    pipeline: Pipeline,
    alerts: Mapping[str, AlertConfig],
    *,
    monitor: bool = False,
    where: str = "",
) -> list[AlertRule]:
    """The rules of ``pipeline``: its run attachments, each check's, and the default
    alerts where it names none (see ``default_targets``). Raises ConfigError naming
    the key of an attachment whose alert does not exist."""
    defaults = [name for name, config in alerts.items() if config.default]
    rules: list[AlertRule] = []
    name = pipeline.name
    if pipeline.alerts is not None:
        attached = [(a, f"{where}alerts[{i}]") for i, a in enumerate(pipeline.alerts)]
    elif pipeline.schedule is not None and not monitor:
        attached = [(AlertAttachment(alert=d), "") for d in defaults]
    else:
        attached = []
    for attachment, key in attached:
        config = _alert(alerts, attachment, key)
        rules.append(_rule(attachment, config, run_subject(name), f"run {name}", name, None))
    for index, stage in enumerate(pipeline.stages):
        if not isinstance(stage, Check):
            continue
        if stage.alerts is not None:
            # A monitor's check is its table: its alerts are the table's own key.
            stage_where = (
                f"{where}alerts" if monitor else f"{where}stages[{index}] ({stage.name}).alerts"
            )
            checks = [(a, f"{stage_where}[{i}]") for i, a in enumerate(stage.alerts)]
        elif monitor:
            checks = [(AlertAttachment(alert=d), "") for d in defaults]
        else:
            checks = []
        label = f"monitor {name}" if monitor else f"check {name}/{stage.name}"
        for attachment, key in checks:
            if attachment.on is not None:
                raise ConfigError(
                    "'on' applies to a pipeline's run alerts; a check alert fires on the "
                    "check failing",
                    where=key,
                )
            config = _alert(alerts, attachment, key)
            rules.append(
                _rule(attachment, config, check_subject(name, stage.name), label, name, stage.name)
            )
    return rules


def _alert(alerts: Mapping[str, AlertConfig], attachment: AlertAttachment, key: str) -> AlertConfig:
    config = alerts.get(attachment.alert)
    if config is None:
        known = ", ".join(sorted(alerts)) or "none; define one in [alerts.NAME]"
        raise ConfigError(f"unknown alert {attachment.alert!r} (alerts: {known})", where=key)
    return config


def _rule(
    attachment: AlertAttachment,
    config: AlertConfig,
    subject: str,
    label: str,
    pipeline: str,
    check: str | None,
) -> AlertRule:
    on = frozenset() if check is not None else _pick(attachment.on, DEFAULT_RUN_EVENTS)
    return AlertRule(
        alert=attachment.alert,
        subject=subject,
        label=label,
        pipeline=pipeline,
        check=check,
        on=frozenset(on),
        failure_threshold=_pick(attachment.failure_threshold, config.failure_threshold),
        success_threshold=_pick(attachment.success_threshold, config.success_threshold),
        send_on_resolved=_pick(attachment.send_on_resolved, config.send_on_resolved),
        repeat=_pick(attachment.repeat, config.repeat),
        description=attachment.description or config.description,
        give_up_after=config.delivery.give_up_after,
    )


def _pick(own: T | None, default: T) -> T:
    return default if own is None else own
