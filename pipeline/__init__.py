"""podium's pure pipeline model: stages, pipelines, records, and the error tree.

Nothing here does I/O or imports an I/O framework; the orchestrator runs what this
package describes.
"""

from ._aggregate import GroupBy, Merger
from ._errors import (
    ConfigError,
    PipelineError,
    PluginError,
    PodiumError,
    RequestFailed,
    ResponseError,
    RunNotFound,
    StageError,
    StoreError,
)
from ._expr import Expr, truthy
from ._fields import FieldSet
from ._pipeline import Pipeline, RunPolicy
from ._refs import import_ref
from ._stages import (
    STAGE_KINDS,
    Aggregate,
    AnyStage,
    Check,
    Fetch,
    Incremental,
    Range,
    Stage,
    Store,
    Transform,
)
from ._template import Template, lookup, render_tree
from ._transform import Record, Rejection

__all__ = [
    "STAGE_KINDS",
    "Aggregate",
    "AnyStage",
    "Check",
    "ConfigError",
    "Expr",
    "Fetch",
    "FieldSet",
    "GroupBy",
    "Incremental",
    "Merger",
    "Pipeline",
    "PipelineError",
    "PluginError",
    "PodiumError",
    "Range",
    "Record",
    "Rejection",
    "RequestFailed",
    "ResponseError",
    "RunNotFound",
    "RunPolicy",
    "Stage",
    "StageError",
    "Store",
    "StoreError",
    "Template",
    "Transform",
    "import_ref",
    "lookup",
    "render_tree",
    "truthy",
]
