"""The built-in ``http`` connector: any JSON API described by config alone."""

from __future__ import annotations

from ._base import Connector, ConnectorConfig


class HttpConnector(Connector):
    kind = "http"
    Config = ConnectorConfig
