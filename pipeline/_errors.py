"""The one exception tree of podium.

Every error a user can cause or meet is a ``PodiumError``; the command line prints its
message as one line and exits non-zero, never with a traceback. Errors from libraries
below (aiohttp, SQLAlchemy, pydantic, tomllib) are translated into this tree where they
cross into podium, so callers branch on a class, never on message text.

    PodiumError
    ├── ConfigError            a config file or value is wrong; ``where`` names the key path
    │   └── NodeIdInUse        another live daemon holds this node id
    ├── PipelineError          a pipeline's chain is invalid (unknown stage, cycle, missing field)
    ├── PluginError            a connector kind cannot be found, imported or configured
    ├── RequestError           a request failed for good; carries ``request``, ``response``
    │   ├── CredentialError    the connector's token or login failed; the request was not sent
    │   ├── TransportError     the exchange did not complete: there is no response
    │   │   ├── ConnectError   refused, reset or unreachable            (kind "connection")
    │   │   ├── DNSError       the host name did not resolve            (kind "dns")
    │   │   ├── TLSError       the TLS handshake or certificate failed  (kind "tls")
    │   │   └── RequestTimeout no complete answer within the timeout    (kind "timeout")
    │   ├── HTTPStatusError    the API answered an error status         (kind "status")
    │   └── ResponseError      the API answered something unusable      (kind "bad_response")
    │       └── MalformedBody  a CSV, NDJSON or XML body broke at ``line``
    ├── StageError             a stage (often a user callable) raised while processing records
    ├── StoreError             the database refused a write or a table definition
    ├── RunNotFound            no run matches the id a user asked for
    ├── ResumeRefused          an interrupted run cannot be continued (its pipeline changed)
    ├── NotifyError            an alert's notification did not reach a destination;
    │                          carries ``retryable`` and ``failures``
    ├── CassetteError          a cassette cannot be read or written, or a replay sent a
    │                          request its cassette does not hold (the run fails)
    └── RunExists              another run already holds a key this run needs
        ├── DuplicateFire      … this (pipeline, scheduled_for): the fire already ran
        ├── DuplicateTrigger   … this idempotency key: the trigger already started a run
        └── PipelineBusy       … the pipeline's overlap lock: a run of it is running

Each class reports ``podium`` as its module, where the public API exports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # type-only: the messages live a layer up, in podium.connectors
    from podium.connectors import Request, Response


class PodiumError(Exception):
    """Root of every error podium raises on purpose."""

    __module__ = "podium"

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(PodiumError):
    """A configuration file or value is wrong."""

    __module__ = "podium"


class NodeIdInUse(ConfigError):
    """Another live daemon already holds this node id (a usage error: exit 2)."""

    __module__ = "podium"


class PipelineError(PodiumError, ValueError):
    """A pipeline definition is inconsistent: names, references, fields or cycles.

    It is also a ValueError so that pydantic, validating a pipeline, reports it with the
    location of the offending value.
    """

    __module__ = "podium"


class PluginError(PodiumError):
    """A connector plugin could not be found, imported or configured."""

    __module__ = "podium"


class RequestError(PodiumError):
    """A request failed for good: after its retries, or with an answer that is final.

    ``request`` is the request as last sent (``None`` where the failure was found before
    one existed, e.g. while parsing a body a connector was handed); ``response`` is the
    final response when there was one. Messages name the URL already redacted.
    """

    __module__ = "podium"
    # What a response check sees as ``error``.
    kind: ClassVar[str] = "request"

    def __init__(
        self,
        message: str,
        *,
        request: Request | None = None,
        response: Response | None = None,
        attempts: int = 1,
        url: str | None = None,
        reason: str | None = None,
        connected: bool | None = None,
    ) -> None:
        self.request = request
        self.response = response
        self.attempts = attempts
        # The redacted URL, for events and messages; never the raw one.
        self.url = url
        # The cause in a few words, without the URL ("HTTP 503 after 4 attempts").
        self.reason = reason or message
        # Whether a connection to the host was made (a response check's ``connected``);
        # None when the kind of failure does not say.
        self.connected = connected if connected is not None else response is not None
        super().__init__(message)

    @property
    def status(self) -> int | None:
        return self.response.status if self.response is not None else None


class CredentialError(RequestError):
    """The connector's run-time credential (an OAuth2 token, a login) could not be obtained,
    so the request was never sent; ``response`` is the token or login endpoint's answer."""

    __module__ = "podium"
    kind = "auth"


class TransportError(RequestError):
    """The exchange did not complete: no response arrived."""

    __module__ = "podium"
    kind = "connection"


class ConnectError(TransportError):
    """The connection was refused, reset or could not be made."""

    __module__ = "podium"
    kind = "connection"


class DNSError(TransportError):
    """The host name did not resolve."""

    __module__ = "podium"
    kind = "dns"


class TLSError(TransportError):
    """The TLS handshake failed: an untrusted, expired or mismatched certificate."""

    __module__ = "podium"
    kind = "tls"


class RequestTimeout(TransportError):
    """No complete answer arrived within the connector's timeout."""

    __module__ = "podium"
    kind = "timeout"


class HTTPStatusError(RequestError):
    """The API answered with an error status (``response`` is set)."""

    __module__ = "podium"
    kind = "status"


class ResponseError(RequestError):
    """A response arrived but its content is unusable (not JSON, records not a list, ...).

    Connectors raise it with a message only; the engine attaches the request and response.
    """

    __module__ = "podium"
    kind = "bad_response"


class MalformedBody(ResponseError):
    """A CSV, NDJSON or XML body cannot be read on from ``line`` (1-based; None when the
    parser cannot say). Records before that line were read and went on downstream."""

    __module__ = "podium"

    def __init__(self, message: str, *, body_format: str, line: int | None) -> None:
        self.format = body_format
        self.line = line
        super().__init__(message)


class StageError(PodiumError):
    """A stage failed while processing records."""

    __module__ = "podium"


class StoreError(PodiumError):
    """The database refused a table definition or a write."""

    __module__ = "podium"


class RunNotFound(PodiumError):
    """No run matches a given id."""

    __module__ = "podium"


class ResumeRefused(PodiumError):
    """An interrupted run cannot be continued: no such run, or its pipeline changed."""

    __module__ = "podium"


class CassetteError(PodiumError):
    """A cassette file cannot be read or written, or a replayed run sent a request the
    cassette does not hold. Not a ``RequestError``: a replay that departs from its
    recording fails the whole run instead of one item, whatever the run's policy."""

    __module__ = "podium"


class RunExists(PodiumError):
    """Another run already holds a key this run needs; ``run_id`` names it when known."""

    __module__ = "podium"

    def __init__(self, message: str, *, pipeline: str, run_id: str | None = None) -> None:
        self.pipeline = pipeline
        self.run_id = run_id
        super().__init__(message)


class DuplicateFire(RunExists):
    """Another run already holds this (pipeline, scheduled_for) key: the fire already ran."""

    __module__ = "podium"

    def __init__(self, pipeline: str, scheduled_for: datetime | None) -> None:
        self.scheduled_for = scheduled_for
        when = scheduled_for.isoformat() if scheduled_for else "?"
        super().__init__(
            f"pipeline {pipeline!r} already has a run for the fire at {when}", pipeline=pipeline
        )


class DuplicateTrigger(RunExists):
    """A trigger with this idempotency key already started a run (``run_id``)."""

    __module__ = "podium"

    def __init__(self, pipeline: str, key: str, run_id: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} already started run {run_id} of pipeline {pipeline!r}",
            pipeline=pipeline,
            run_id=run_id,
        )


class PipelineBusy(RunExists):
    """A run of the pipeline is running, and its overlap policy allows one at a time."""

    __module__ = "podium"

    def __init__(self, pipeline: str, run_id: str) -> None:
        super().__init__(
            f"pipeline {pipeline!r} is already running (run {run_id}) and its overlap "
            "policy allows one run at a time",
            pipeline=pipeline,
            run_id=run_id,
        )


class NotifyError(PodiumError):
    """An alert's notification did not reach one or more of its destinations.

    ``failures`` maps each destination that failed (``urls[0] mailto://…``,
    ``webhook POST https://host``) to why, both already redacted. ``retryable`` is False
    only when sending again cannot help (a URL Apprise cannot use, a webhook answering a
    4xx other than 408/429); a dispatcher retries the rest later. ``delivered`` lists
    the destinations that did accept it, which a retry leaves out.
    """

    __module__ = "podium"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        alert: str | None = None,
        failures: Mapping[str, str] | None = None,
        delivered: Sequence[str] = (),
    ) -> None:
        self.retryable = retryable
        self.alert = alert
        self.failures: dict[str, str] = dict(failures or {})
        self.delivered: list[str] = list(delivered)
        super().__init__(message)
