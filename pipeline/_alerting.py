"""Attaching alerts: which ``[alerts.NAME]`` a check, a monitor or a pipeline's runs
notify, and the thresholds of that attachment.

The model only names an alert; the config loader checks that the name exists and fills
what an attachment leaves unset from the alert's own defaults (``AlertRule``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ._schedule import Duration

# What a run attachment can fire on; ``missed``: a scheduled fire that did not start.
RunEvent = Literal["failed", "timed_out", "partial", "missed"]
DEFAULT_RUN_EVENTS: frozenset[str] = frozenset({"failed", "timed_out"})


class AlertAttachment(BaseModel):
    """``alerts = ["ops"]`` or ``alerts = [{ alert = "ops", failure_threshold = 1 }]``.

    Unset fields take the alert's defaults. ``on`` applies to a pipeline's runs only:
    which endings count as a failure (the others count as a success).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    alert: str = Field(min_length=1)
    on: frozenset[RunEvent] | None = None
    failure_threshold: int | None = Field(default=None, ge=1, le=10_000)
    success_threshold: int | None = Field(default=None, ge=1, le=10_000)
    send_on_resolved: bool | None = None
    # Reminder interval while still failing; unset: the alert's.
    repeat: Duration | None = None
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _name_only(cls, value: Any) -> Any:
        return {"alert": value} if isinstance(value, str) else value

    @field_validator("on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("on")
    @classmethod
    def _not_empty(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        if value is not None and not value:
            raise ValueError("'on' needs at least one of failed, timed_out, partial, missed")
        return value

    @field_validator("repeat")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("repeat must be a positive duration, e.g. '1h'")
        return value


def _as_attachments(value: Any) -> Any:
    # ``alerts = "ops"`` is one attachment; a list is kept for pydantic to validate.
    return [value] if isinstance(value, str | dict) else value


Attachments = Annotated[list[AlertAttachment], BeforeValidator(_as_attachments)]
