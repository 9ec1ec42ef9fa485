"""podium: an asyncio orchestrator for API-aggregation pipelines.

The public API is what this module exports (``__all__``); every other module is podium's
own. Names load on first use, so ``import podium`` costs almost nothing and the command
line starts fast::

    import podium

    pipeline = podium.Pipeline(
        name="temps",
        stages=[
            podium.Fetch(name="get", connector="api", path="/temps", records="items"),
            podium.Store(name="save", table="temps", key="id"),
        ],
    )
    api = podium.HttpConnector("api", podium.ConnectorConfig(kind="http", base_url="https://…"))
    result = await podium.run(pipeline, [api], database="sqlite:///temps.db")

Plugin authors subclass ``Connector`` (with a ``ConnectorConfig``), ``Paginator`` and
``Auth``; ``podium.testing`` runs pipelines against an in-memory transport.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS = {
    # running
    "run": "podium.orchestrator",
    "RunResult": "podium.orchestrator",
    "load_config": "podium.orchestrator",
    "Config": "podium.orchestrator",
    "configure_logging": "podium.orchestrator",
    # the pipeline model
    "Pipeline": "podium.pipeline",
    "RunPolicy": "podium.pipeline",
    "Fetch": "podium.pipeline",
    "Transform": "podium.pipeline",
    "Aggregate": "podium.pipeline",
    "Check": "podium.pipeline",
    "Store": "podium.pipeline",
    "Incremental": "podium.pipeline",
    "Range": "podium.pipeline",
    "Record": "podium.pipeline",
    # connectors, for users and plugin authors
    "Connector": "podium.connectors",
    "ConnectorConfig": "podium.connectors",
    "HttpConnector": "podium.connectors",
    "RetryPolicy": "podium.connectors",
    "Request": "podium.connectors",
    "Response": "podium.connectors",
    "Paginator": "podium.connectors",
    "Auth": "podium.connectors",
    "Credential": "podium.connectors",
    "NeedCredential": "podium.connectors",
    # the exception tree
    "PodiumError": "podium.pipeline",
    "ConfigError": "podium.pipeline",
    "NodeIdInUse": "podium.pipeline",
    "PipelineError": "podium.pipeline",
    "PluginError": "podium.pipeline",
    "RequestError": "podium.pipeline",
    "CredentialError": "podium.pipeline",
    "TransportError": "podium.pipeline",
    "ConnectError": "podium.pipeline",
    "DNSError": "podium.pipeline",
    "TLSError": "podium.pipeline",
    "RequestTimeout": "podium.pipeline",
    "HTTPStatusError": "podium.pipeline",
    "ResponseError": "podium.pipeline",
    "MalformedBody": "podium.pipeline",
    "StageError": "podium.pipeline",
    "StoreError": "podium.pipeline",
    "RunNotFound": "podium.pipeline",
    "DuplicateFire": "podium.pipeline",
    "DuplicateTrigger": "podium.pipeline",
    "PipelineBusy": "podium.pipeline",
    "ResumeRefused": "podium.pipeline",
    "RunExists": "podium.pipeline",
    "NotifyError": "podium.pipeline",
    "CassetteError": "podium.pipeline",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'podium' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from podium.connectors import Auth as Auth
    from podium.connectors import Connector as Connector
    from podium.connectors import ConnectorConfig as ConnectorConfig
    from podium.connectors import Credential as Credential
    from podium.connectors import HttpConnector as HttpConnector
    from podium.connectors import NeedCredential as NeedCredential
    from podium.connectors import Paginator as Paginator
    from podium.connectors import Request as Request
    from podium.connectors import Response as Response
    from podium.connectors import RetryPolicy as RetryPolicy
    from podium.orchestrator import Config as Config
    from podium.orchestrator import RunResult as RunResult
    from podium.orchestrator import configure_logging as configure_logging
    from podium.orchestrator import load_config as load_config
    from podium.orchestrator import run as run
    from podium.pipeline import Aggregate as Aggregate
    from podium.pipeline import CassetteError as CassetteError
    from podium.pipeline import Check as Check
    from podium.pipeline import ConfigError as ConfigError
    from podium.pipeline import ConnectError as ConnectError
    from podium.pipeline import CredentialError as CredentialError
    from podium.pipeline import DNSError as DNSError
    from podium.pipeline import DuplicateFire as DuplicateFire
    from podium.pipeline import DuplicateTrigger as DuplicateTrigger
    from podium.pipeline import Fetch as Fetch
    from podium.pipeline import HTTPStatusError as HTTPStatusError
    from podium.pipeline import Incremental as Incremental
    from podium.pipeline import MalformedBody as MalformedBody
    from podium.pipeline import NodeIdInUse as NodeIdInUse
    from podium.pipeline import NotifyError as NotifyError
    from podium.pipeline import Pipeline as Pipeline
    from podium.pipeline import PipelineBusy as PipelineBusy
    from podium.pipeline import PipelineError as PipelineError
    from podium.pipeline import PluginError as PluginError
    from podium.pipeline import PodiumError as PodiumError
    from podium.pipeline import Range as Range
    from podium.pipeline import Record as Record
    from podium.pipeline import RequestError as RequestError
    from podium.pipeline import RequestTimeout as RequestTimeout
    from podium.pipeline import ResponseError as ResponseError
    from podium.pipeline import ResumeRefused as ResumeRefused
    from podium.pipeline import RunExists as RunExists
    from podium.pipeline import RunNotFound as RunNotFound
    from podium.pipeline import RunPolicy as RunPolicy
    from podium.pipeline import StageError as StageError
    from podium.pipeline import Store as Store
    from podium.pipeline import StoreError as StoreError
    from podium.pipeline import TLSError as TLSError
    from podium.pipeline import Transform as Transform
    from podium.pipeline import TransportError as TransportError
