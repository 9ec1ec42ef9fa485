"""Connectors: how podium talks to an API, described as data and pure functions.

A connector sets up its session (headers, auth), turns a fetch into a chain of
``Request`` objects (pagination) and turns each ``Response`` into records. The
orchestrator does all I/O.
"""

from ._auth import ApiKeyAuth, AuthConfig, AuthFlow, BasicAuth, BearerAuth
from ._base import Connector, ConnectorConfig, RetryPolicy
from ._http import HttpConnector
from ._messages import Request, Response
from ._pagination import PAGINATOR_TYPES, PaginatorConfig
from ._registry import ENTRY_POINT_GROUP, connector_class, known_kinds, plugin_entry_points

__all__ = [
    "ENTRY_POINT_GROUP",
    "PAGINATOR_TYPES",
    "ApiKeyAuth",
    "AuthConfig",
    "AuthFlow",
    "BasicAuth",
    "BearerAuth",
    "Connector",
    "ConnectorConfig",
    "HttpConnector",
    "PaginatorConfig",
    "Request",
    "Response",
    "RetryPolicy",
    "connector_class",
    "known_kinds",
    "plugin_entry_points",
]
