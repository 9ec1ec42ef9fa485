"""What a connector is: a config model plus three pure jobs.

1. ``session_headers`` / ``auth`` — how its session is set up;
2. ``requests`` — how one logical fetch becomes a chain of requests (a paginator);
3. ``records`` — how a response becomes records.

The orchestrator owns the transport, the limits, retries and timeouts, and drives these
methods; a connector never opens a socket. Subclass ``Connector`` with a ``kind`` and a
``Config`` model to add a new API source.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from podium.pipeline import BodyFormat, CsvOptions, Fetch, PipelineError, Record, ResponseError

from . import _json
from ._auth import AuthConfig, AuthFlow, CredentialFlow, _AuthBase, one_line
from ._formats import (
    CsvDecoder,
    Decoder,
    NdjsonDecoder,
    XmlDecoder,
    choose,
    gunzip,
    is_gzip,
    whole_json,
)
from ._messages import Request, Response
from ._pagination import PAGINATOR_TYPES, PaginatorConfig, SinglePage
from ._paginator import _Paginator
from ._rates import RateSettings, RouteRate, parse_rate
from ._rules import ResponseRule, parse_rules


class RetryPolicy(BaseModel):
    """Retries for connection errors, timeouts, 5xx and 429; other 4xx are final.

    ``backoff_strategy``: ``exponential`` doubles ``backoff`` per attempt up to
    ``max_backoff``; ``constant`` waits ``backoff`` each time; ``header`` waits the seconds
    the answer's ``backoff_header`` says (delta seconds or an HTTP date), exponential when
    it says nothing. Every wait is jittered by ± ``jitter``; a ``Retry-After`` on a retried
    status is honoured whatever the strategy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    attempts: int = Field(default=4, ge=1, le=100)
    backoff: float = Field(default=0.5, ge=0, description="first wait in seconds; doubles")
    max_backoff: float = Field(default=30.0, ge=0)
    jitter: float = Field(default=0.25, ge=0, le=1, description="± share of each wait")
    # A Retry-After longer than this fails the request instead of stalling the run.
    max_retry_after: float = Field(default=120.0, ge=0)
    statuses: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})
    backoff_strategy: Literal["exponential", "constant", "header"] = "exponential"
    backoff_header: str = "Retry-After"


class RedirectPolicy(BaseModel):
    """How redirects are followed (by podium, not the HTTP client, so credentials stay put)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    follow: bool = True
    max: int = Field(default=10, ge=0, le=50)
    # "same_origin": a hop to another origin goes without the connector's auth headers,
    # secret-bearing headers and query values, and cookies. "any_origin" sends them on.
    credentials: Literal["same_origin", "any_origin"] = "same_origin"


class TlsConfig(BaseModel):
    """Certificate checking for HTTPS: a private CA, or (for a test host) no checking."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    verify: bool = True
    ca_file: str | None = None


class ConnectorConfig(BaseModel):
    """Settings every connector has; a plugin's Config subclasses this."""

    # inf and nan are refused: a timeout of inf would pass here and crash aiohttp later.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: str
    # Prefixed to every fetch path; empty when the paths are absolute URLs.
    base_url: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    auth: AuthConfig | None = None
    timeout: float = Field(default=30.0, gt=0, description="seconds for a whole request")
    connect_timeout: float | None = Field(default=10.0, gt=0)
    concurrency: int = Field(default=16, ge=1, le=10_000)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    redirects: RedirectPolicy = Field(default_factory=RedirectPolicy)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    # Rate budgets (see _rates.py): "10/s", "600/min", "5000/h"; burst 1 spaces requests.
    rate: str | None = None
    burst: int = Field(default=1, ge=1, le=100_000)
    rates: tuple[RouteRate, ...] = ()
    # The API's rate-limit headers: hold until their reset; past max_wait, stop the run.
    rate_headers: bool = True
    on_quota: Literal["wait", "stop"] = "wait"
    max_wait: float = Field(default=60.0, ge=0)
    # Response rules for every request of the connector (a fetch's own rules go first).
    rules: tuple[ResponseRule, ...] = ()

    @field_validator("rate")
    @classmethod
    def _valid_rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value

    def rate_settings(self) -> RateSettings:
        return RateSettings(
            rate=parse_rate(self.rate) if self.rate is not None else None,
            burst=self.burst,
            routes=self.rates,
            headers=self.rate_headers,
            on_quota=self.on_quota,
            max_wait=self.max_wait,
        )

    # How bodies become records, unless a fetch says otherwise (see pipeline/_formats.py).
    format: BodyFormat = "json"
    csv: CsvOptions = Field(default_factory=CsvOptions)

    @field_validator("headers")
    @classmethod
    def _one_line_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            one_line(name, f"header name {name!r}")
            one_line(text, f"header {name!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/") if value.endswith("/") else value


_paginator_adapter: TypeAdapter[Any] = TypeAdapter(PaginatorConfig)
_XML_NAME = re.compile(r"[A-Za-z_][\w\-]*")


class Connector:
    """Base connector: JSON over HTTP, paginated as the fetch stage asks."""

    kind: ClassVar[str] = "base"
    Config: ClassVar[type[ConnectorConfig]] = ConnectorConfig

    def __init__(self, name: str, config: ConnectorConfig) -> None:
        self.name = name
        self.config = config
        # Validated ``paginate`` tables by stage; each chain takes a fresh copy. The entry
        # holds the stage itself, so its id cannot be reused by another while cached.
        self._paginators: dict[int, tuple[Fetch, _Paginator | None]] = {}
        self._rules: dict[int, tuple[Fetch, tuple[ResponseRule, ...]]] = {}

    # -- session ---------------------------------------------------------------------------
    def session_headers(self) -> dict[str, str]:
        headers = dict(self.config.headers)
        if self.config.auth is not None:
            headers.update(self.config.auth.session_headers())
        return headers

    def auth_flow(self, request: Request) -> AuthFlow:
        auth: _AuthBase | None = self.config.auth
        if auth is None:
            yield request
        else:
            yield from auth.flow(request)

    def needs_auth_flow(self) -> bool:
        """False when every request goes out as built (static headers or no auth), so the
        orchestrator can skip driving a flow per request."""
        if type(self).auth_flow is not Connector.auth_flow:
            return True
        auth: _AuthBase | None = self.config.auth
        return auth is not None and auth.changes_requests

    def credential_flow(self) -> CredentialFlow | None:
        """How the session obtains its run-time credential (a token, a login), if any."""
        auth: _AuthBase | None = self.config.auth
        return None if auth is None else auth.credential_flow(self.config.base_url)

    def secrets(self) -> list[str]:
        return self.config.auth.secrets() if self.config.auth is not None else []

    # -- requests --------------------------------------------------------------------------
    def check_fetch(self, fetch: Fetch) -> None:
        """Validate a fetch stage's connector-specific settings at load time."""
        if fetch.paginate is not None:
            paginator = self.paginator(fetch)
            problem = paginator.check_fetch(fetch) if paginator is not None else None
            if problem is not None:  # the type is right: listing the others would mislead
                raise PipelineError(f"paginate: {problem}")
        if fetch.rules is not None:
            self.response_rules(fetch)
        body_format = self.body_format(fetch)
        if fetch.records is not None and body_format == "csv":
            raise PipelineError("records: a CSV body's rows are the records; leave it out")
        if fetch.records is not None and body_format == "xml":
            _xml_path(fetch.records)

    def body_format(self, fetch: Fetch) -> str:
        """The fetch's format, else the connector's: json, ndjson, csv, xml, auto or none."""
        return fetch.format or self.config.format

    def streams(self, fetch: Fetch) -> bool:
        """Whether a single-request fetch reads its body as it arrives. Only the JSON
        body is read whole (one document); ``auto`` streams until it knows. So is any
        body whose rules read it: a rule on the body (``body.error == 'busy'``) must see
        it before a record goes downstream, so such a fetch holds its body in memory."""
        if self.body_format(fetch) not in ("ndjson", "csv", "xml", "auto"):
            return False
        return not any(rule.reads_body for rule in self.response_rules(fetch))

    def response_rules(self, fetch: Fetch) -> tuple[ResponseRule, ...]:
        """The rules that judge ``fetch``'s answers: its own first, then the connector's."""
        entry = self._rules.get(id(fetch))
        if entry is None or entry[0] is not fetch:
            own = parse_rules(fetch.rules) if fetch.rules is not None else ()
            entry = self._rules[id(fetch)] = (fetch, own + self.config.rules)
        return entry[1]

    def paginator(self, fetch: Fetch) -> _Paginator | None:
        """A fresh paginator for one chain of ``fetch``, or None for a single request."""
        entry = self._paginators.get(id(fetch))
        if entry is None or entry[0] is not fetch:
            entry = self._paginators[id(fetch)] = (fetch, self._paginator_for(fetch))
        prototype = entry[1]
        return None if prototype is None else prototype.fresh()

    def _paginator_for(self, fetch: Fetch) -> _Paginator | None:
        if fetch.paginate is None:
            return None
        try:
            paginator: _Paginator = _paginator_adapter.validate_python(fetch.paginate)
        except ValidationError as exc:
            raise PipelineError(_paginate_problem(exc)) from None
        return None if isinstance(paginator, SinglePage) and not paginator.max_pages else paginator

    def build_request(self, fetch: Fetch, values: dict[str, Any]) -> Request:
        """The first request of a fetch for one fan-out item (``values`` fills templates)."""
        hole = fetch.paginate_hole
        if hole is None:
            url = self.url_for(fetch.path_template.render(values, quote=_quote_path))
        else:  # the paginator fills ``{hole}`` in every page's URL: keep it as it is
            kept = {**values, hole: _Hole(hole)}
            url = self.url_for(fetch.path_template.render(kept, quote=_quote_path))
        params = fetch.params_template.render(values) if fetch.params else {}
        headers = fetch.headers_template.render(values) if fetch.headers else {}
        body = fetch.body_template.render(values) if fetch.body is not None else None
        return Request(fetch.method, url, params, headers, body)

    def url_for(self, path: str) -> str:
        """A rendered path as a URL: absolute as given, else under ``base_url``."""
        if path.startswith(("http://", "https://")):
            return path
        if not path or path.startswith(("/", "?")):
            return self.config.base_url + path
        return f"{self.config.base_url}/{path}"

    # -- responses -------------------------------------------------------------------------
    def records(self, fetch: Fetch, response: Response) -> list[Record]:
        """The records of a body that arrived whole. JSON: an object is one record; in a
        list, every object is a record and every other item (a number, a string, a list,
        null) becomes ``{"value": item}``, wherever it stands in the list. Other formats
        go through their decoder (``decoder``) in one piece."""
        if (fetch.format or self.config.format) != "json" or is_gzip(
            response.headers, response.url
        ):
            decoder = self.decoder(fetch, response)
            if decoder is not None:
                return decoder.feed(response.body) + decoder.close()
        # The JSON document, inline: this runs for every page of every JSON fetch.
        data = response.json()
        expr = fetch.records_expr
        if expr is not None:
            data = expr.search(data)
            if data is None:
                raise ResponseError(f"records path {expr.source!r} matched nothing")
        if isinstance(data, dict):
            return [data]
        if isinstance(data, list):
            # Every item is checked: a list that starts with objects may still hold others.
            return [r if isinstance(r, dict) else {"value": r} for r in data]
        raise ResponseError(f"expected records (an object or a list), got {type(data).__name__}")

    def decoder(self, fetch: Fetch, response: Response) -> Decoder | None:
        """A fresh decoder for the response's body, or None for a plain JSON document
        (read whole by ``Response.json``, the fast path). A ``.gz`` payload is
        decompressed on the way in."""
        body_format = self.body_format(fetch)
        if body_format == "auto":
            body_format = choose(response.headers, response.url)
        gzipped = is_gzip(response.headers, response.url)
        if body_format == "json" and not gzipped:
            return None
        decoder: Decoder
        if body_format == "ndjson":
            decoder = NdjsonDecoder(fetch.records_expr)
        elif body_format == "csv":
            decoder = CsvDecoder(fetch.csv or self.config.csv)
        elif body_format == "xml":
            decoder = XmlDecoder(_xml_path(fetch.records) if fetch.records else None)
        else:
            decoder = _JsonDocument(fetch.records_expr)
        return gunzip(decoder, body_format) if gzipped else decoder


class _JsonDocument:
    """A whole JSON document gathered from chunks (a ``.json.gz`` download, or ``auto``
    finding JSON): JSON has no record boundaries to stream by."""

    def __init__(self, records: Any) -> None:
        self._records = records
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Record]:
        self._parts.append(chunk)
        return []

    def close(self) -> list[Record]:
        body, self._parts = b"".join(self._parts), []
        try:
            data = _json.loads(body)
        except _json.JSONDecodeError as exc:
            excerpt = body[:60].decode("utf-8", "replace")
            raise ResponseError(
                f"response is not JSON ({exc.msg}); it starts with {excerpt!r}"
            ) from None
        return whole_json(self._records, data)


def _xml_path(records: str) -> tuple[str, ...]:
    """An XML records path: element names from the root, dotted (``rss.channel.item``)."""
    names = tuple(records.split("."))
    if not all(_XML_NAME.fullmatch(n) for n in names):
        raise PipelineError(
            f"records {records!r}: an XML records path is element names from the root, "
            "dotted (e.g. 'rss.channel.item')"
        )
    return names


def _paginate_problem(exc: ValidationError) -> str:
    """One line for a bad ``paginate`` table: the unknown type or key, and the fix."""
    errors = exc.errors(include_url=False)
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    types = ", ".join(PAGINATOR_TYPES)
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        given = str((err.get("ctx") or {}).get("tag", ""))
        close = difflib.get_close_matches(given, PAGINATOR_TYPES, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        what = f"unknown type {given!r}{hint}" if given else "needs a 'type'"
        return f"paginate: {what} (types: {types})"
    # The type is known from here on (the first part of the location is its tag): the
    # list of types would only send a reader looking in the wrong place.
    loc = ".".join(str(p) for p in err["loc"][1:])
    if err["type"] == "extra_forbidden":
        message = f"unknown key {err['loc'][-1]!r}"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
    return f"paginate{'.' + loc if loc else ''}: {message}"


class _Hole(str):
    """A path hole the paginator fills: rendered back as ``{name}``."""

    __slots__ = ()

    def __new__(cls, name: str) -> _Hole:
        return super().__new__(cls, "{" + name + "}")


def _quote_path(value: Any) -> str:
    if isinstance(value, _Hole):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return quote(str(value), safe="")
