"""podium's pure pipeline model: stages, pipelines, records, and the error tree.

Nothing here does I/O or imports an I/O framework; the orchestrator runs what this
package describes.
"""

from ._aggregate import GroupBy, Merger
from ._alerting import DEFAULT_RUN_EVENTS, AlertAttachment, Attachments, RunEvent
from ._errors import (
    CassetteError,
    ConfigError,
    ConnectError,
    CredentialError,
    DNSError,
    DuplicateFire,
    DuplicateTrigger,
    HTTPStatusError,
    NodeIdInUse,
    NotifyError,
    PipelineBusy,
    PipelineError,
    PluginError,
    PodiumError,
    RequestError,
    RequestTimeout,
    ResponseError,
    ResumeRefused,
    RunExists,
    RunNotFound,
    StageError,
    StoreError,
    TLSError,
    TransportError,
)
from ._expr import Expr, truthy
from ._fields import FieldSet
from ._pipeline import Pipeline, RunPolicy
from ._refs import import_ref
from ._schedule import Duration, Schedule, check_cron, parse_duration
from ._stages import (
    STAGE_KINDS,
    Aggregate,
    AnyStage,
    Check,
    Compensate,
    Fetch,
    Incremental,
    Range,
    Stage,
    Store,
    Transform,
)
from ._template import Template, TreeTemplate, lookup, render_tree
from ._transform import Record, Rejection

__all__ = [
    "DEFAULT_RUN_EVENTS",
    "STAGE_KINDS",
    "Aggregate",
    "AlertAttachment",
    "AnyStage",
    "Attachments",
    "CassetteError",
    "Check",
    "Compensate",
    "ConfigError",
    "ConnectError",
    "CredentialError",
    "DNSError",
    "DuplicateFire",
    "DuplicateTrigger",
    "Duration",
    "Expr",
    "Fetch",
    "FieldSet",
    "GroupBy",
    "HTTPStatusError",
    "Incremental",
    "Merger",
    "NodeIdInUse",
    "NotifyError",
    "Pipeline",
    "PipelineBusy",
    "PipelineError",
    "PluginError",
    "PodiumError",
    "Range",
    "Record",
    "Rejection",
    "RequestError",
    "RequestTimeout",
    "ResponseError",
    "ResumeRefused",
    "RunEvent",
    "RunExists",
    "RunNotFound",
    "RunPolicy",
    "Schedule",
    "Stage",
    "StageError",
    "Store",
    "StoreError",
    "TLSError",
    "Template",
    "Transform",
    "TransportError",
    "TreeTemplate",
    "check_cron",
    "import_ref",
    "lookup",
    "parse_duration",
    "render_tree",
    "truthy",
]
