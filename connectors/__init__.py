"""Connectors: how podium talks to an API, described as data and pure functions.

A connector sets up its session (headers, auth), turns a fetch into a chain of
``Request`` objects (pagination) and turns each ``Response`` into records. The
orchestrator does all I/O.
"""

from ._auth import (
    AUTH_TYPES,
    ApiKeyAuth,
    Auth,
    AuthConfig,
    AuthFlow,
    BasicAuth,
    BearerAuth,
    CookieLogin,
    Credential,
    CredentialFlow,
    NeedCredential,
    OAuth2ClientCredentials,
)
from ._base import Connector, ConnectorConfig, RedirectPolicy, RetryPolicy, TlsConfig
from ._formats import Decoder
from ._http import HttpConnector
from ._messages import BodyStream, Request, Response, origin
from ._pagination import PAGINATOR_TYPES, Paginator, PaginatorConfig
from ._rates import Rate, RateSettings, RouteRate, parse_rate
from ._registry import (
    COMMON_FIELDS,
    ENTRY_POINT_GROUP,
    KindInfo,
    connector_class,
    describe_kinds,
    known_kinds,
    plugin_entry_points,
    settings_catalog,
)
from ._rules import ACTIONS, ResponseRule, first_match, parse_rules, response_view

__all__ = [
    "ACTIONS",
    "AUTH_TYPES",
    "COMMON_FIELDS",
    "ENTRY_POINT_GROUP",
    "PAGINATOR_TYPES",
    "ApiKeyAuth",
    "Auth",
    "AuthConfig",
    "AuthFlow",
    "BasicAuth",
    "BearerAuth",
    "BodyStream",
    "Connector",
    "ConnectorConfig",
    "CookieLogin",
    "Credential",
    "CredentialFlow",
    "Decoder",
    "HttpConnector",
    "KindInfo",
    "NeedCredential",
    "OAuth2ClientCredentials",
    "Paginator",
    "PaginatorConfig",
    "Rate",
    "RateSettings",
    "RedirectPolicy",
    "Request",
    "Response",
    "ResponseRule",
    "RetryPolicy",
    "RouteRate",
    "TlsConfig",
    "connector_class",
    "describe_kinds",
    "first_match",
    "known_kinds",
    "origin",
    "parse_rate",
    "parse_rules",
    "plugin_entry_points",
    "response_view",
    "settings_catalog",
]
