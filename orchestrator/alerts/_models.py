"""What an ``[alerts.NAME]`` table validates into: where an alert's notifications go.

Nothing here imports Apprise: a config loads (``podium validate``) without it, and
``check_urls`` (in ``_notify``) is what asks Apprise whether it knows each URL.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from podium.pipeline import Duration, TreeTemplate

from ._notification import FIELDS

# RFC 9110 token characters: what a header name may be made of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class WebhookSpec(BaseModel):
    """A templated generic webhook, for a receiver Apprise has no plugin for.

    ``body`` is a JSON value whose strings may use ``{alert}`` ``{subject}`` ``{kind}``
    ``{title}`` ``{body}`` ``{cause}`` ``{pipeline}`` ``{run_id}`` ``{at}`` ``{incident}``
    ``{id}``; a string that is exactly one ``{name}`` keeps the value's JSON type (``id``
    stays a number, a missing ``cause`` is ``null``). Without ``body``, all of them are
    sent as one object.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = {}
    body: Any = None
    timeout: float = Field(10, gt=0)

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"not a URL: {url!r} ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "a webhook URL is http:// or https:// with a host "
                "(other services are Apprise URLs, under urls)"
            )
        return url

    @field_validator("headers")
    @classmethod
    def _no_header_injection(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: CR, LF and NUL are not allowed in a value")
        return headers

    @field_validator("body")
    @classmethod
    def _known_fields(cls, body: Any) -> Any:
        unknown = sorted(TreeTemplate(body).fields - set(FIELDS))
        if unknown:
            names = ", ".join(f"{{{name}}}" for name in unknown)
            known = " ".join(f"{{{name}}}" for name in FIELDS)
            raise ValueError(f"unknown placeholder {names} in the body template (known: {known})")
        try:
            orjson.dumps(body)
        except TypeError as exc:
            raise ValueError(f"the body template is not JSON: {exc}") from None
        return body

    @model_validator(mode="after")
    def _one_credential(self) -> WebhookSpec:
        if urlsplit(self.url).username is not None and any(
            name.lower() == "authorization" for name in self.headers
        ):
            raise ValueError(
                "give credentials in the URL (user:password@) or in an "
                "Authorization header, not both"
            )
        return self


class Delivery(BaseModel):
    """How the dispatcher retries a notification its destinations did not take."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    backoff: Duration = timedelta(seconds=5)  # the first wait; doubles per attempt
    max_backoff: Duration = timedelta(minutes=5)
    # A notification not delivered by then is recorded as failed and not tried again.
    give_up_after: Duration = timedelta(hours=1)

    @model_validator(mode="after")
    def _positive(self) -> Delivery:
        if self.backoff <= timedelta(0) or self.give_up_after <= timedelta(0):
            raise ValueError("backoff and give_up_after must be positive durations")
        if self.max_backoff < self.backoff:
            raise ValueError("max_backoff must be at least backoff")
        return self

    def wait(self, attempts: int) -> timedelta:
        """The pause after the ``attempts``-th failed attempt."""
        return min(self.max_backoff, self.backoff * (1 << min(max(attempts - 1, 0), 30)))


class AlertConfig(BaseModel):
    """One ``[alerts.NAME]`` table: its destinations and the defaults of what attaches it.

    ``urls`` are Apprise URLs (``mailto://…``, ``slack://…``, ``ntfy://…``); ``url`` is
    the shorthand for one and is merged into ``urls`` (after validation it is ``None``).
    At least one of ``urls``, ``url`` or ``webhook`` is needed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: list[str] = []
    url: str | None = None
    webhook: WebhookSpec | None = None
    description: str = ""
    # Applies to every pipeline and check that names no alert of its own.
    default: bool = False
    # Defaults for the attachments that name this alert.
    failure_threshold: int = Field(3, ge=1)
    success_threshold: int = Field(2, ge=1)
    send_on_resolved: bool = True
    # Reminder interval while still failing ("1h"); None sends no reminders.
    repeat: Duration | None = None
    delivery: Delivery = Field(default_factory=Delivery)

    @model_validator(mode="before")
    @classmethod
    def _merge_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("url"), str):
            urls = data.get("urls", [])
            if isinstance(urls, list):
                merged = urls if data["url"] in urls else [*urls, data["url"]]
                data = {**data, "urls": merged, "url": None}
        return data

    @field_validator("urls")
    @classmethod
    def _urls_not_blank(cls, urls: list[str]) -> list[str]:
        for i, url in enumerate(urls):
            if not url.strip():
                raise ValueError(f"urls[{i}] is empty")
            if any(ord(c) < 32 or ord(c) == 127 for c in url):
                raise ValueError(f"urls[{i}] contains a control character (CR, LF, tab, …)")
        return urls

    @field_validator("repeat")
    @classmethod
    def _positive(cls, repeat: timedelta | None) -> timedelta | None:
        if repeat is not None and repeat <= timedelta(0):
            raise ValueError("repeat must be a positive duration, e.g. '1h'")
        return repeat

    @model_validator(mode="after")
    def _has_destination(self) -> AlertConfig:
        if not self.urls and self.webhook is None:
            raise ValueError("an alert needs a destination: urls, url or webhook")
        return self
