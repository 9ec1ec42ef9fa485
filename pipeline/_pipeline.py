"""A pipeline: named stages wired into a validated DAG.

Validation happens when the object is built — from TOML or from Python alike — so a
misspelt stage, a cycle or a field nothing produces is reported before any request goes
out, with the position of the mistake (``stages[2] (merge): ...``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, model_validator

from ._alerting import Attachments
from ._errors import PipelineError
from ._fields import FieldSet
from ._schedule import Schedule
from ._stages import (
    NAME_PATTERN,
    Aggregate,
    AnyStage,
    Check,
    Fetch,
    Stage,
    Store,
    Transform,
)


class RunPolicy(BaseModel):
    """How failures decide a run's status."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Failed requests up to this share of all requests leave the run `partial`; more make it
    # `failed`. 0 makes any failed request fail the run.
    max_failed_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    # Keep requests that failed for good and rejected records as dead letters, to read
    # and replay. A monitor's are not: its check results are its history, and a probe
    # replayed later says nothing about then. (A saga's compensation that could not be
    # undone is always kept.)
    dead_letters: bool = True


def _stage_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("kind")
    return getattr(value, "kind", None)


StageField = Annotated[
    Annotated[Fetch, Tag("fetch")]
    | Annotated[Transform, Tag("transform")]
    | Annotated[Aggregate, Tag("aggregate")]
    | Annotated[Check, Tag("check")]
    | Annotated[Store, Tag("store")],
    Discriminator(
        _stage_kind,
        custom_error_type="stage_kind",
        custom_error_message="needs 'kind': one of fetch, transform, aggregate, check, store",
    ),
]


class Pipeline(BaseModel):
    """Stages in order; each reads the stage before unless it names its inputs."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    stages: list[StageField] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    policy: RunPolicy = Field(default_factory=RunPolicy)
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    # When the daemon runs it on its own; runs started by hand ignore it.
    schedule: Schedule | None = None
    # Alerts on the pipeline's runs (failed, timed out, partial, missed); see AlertAttachment.
    alerts: Attachments | None = None

    _order: tuple[str, ...] = PrivateAttr(())
    _inputs: dict[str, tuple[str, ...]] = PrivateAttr(default_factory=dict)
    _consumers: dict[str, tuple[str, ...]] = PrivateAttr(default_factory=dict)
    _fields: dict[str, FieldSet] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _callables_as_transforms(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("stages"), list):
            data = dict(data)
            data["stages"] = [_as_stage(s) for s in data["stages"]]
        return data

    @model_validator(mode="after")
    def _wire(self) -> Pipeline:
        """Wire and check the stages: names, inputs, order, fields, parameters."""
        by_name = self._index_stages()
        inputs = self._wire_inputs(by_name)
        order = _topological(self.stages, inputs)
        self._fields = self._infer_fields(by_name, inputs, order)
        self._check_parameters()
        self._order = order
        self._inputs = inputs
        self._consumers = {
            s.name: tuple(n for n in order if s.name in inputs[n]) for s in self.stages
        }
        return self

    def _index_stages(self) -> dict[str, AnyStage]:
        by_name: dict[str, AnyStage] = {}
        for i, stage in enumerate(self.stages):
            if stage.name in by_name:
                raise _at(i, stage, f"duplicate stage name {stage.name!r}")
            by_name[stage.name] = stage
        return by_name

    def _wire_inputs(self, by_name: dict[str, AnyStage]) -> dict[str, tuple[str, ...]]:
        """Each stage's inputs: named with ``from``, else the stage before it."""
        inputs: dict[str, tuple[str, ...]] = {}
        previous: str | None = None
        for i, stage in enumerate(self.stages):
            wired = stage.inputs or stage.default_inputs(previous)
            problem = _input_problem(stage, wired, by_name)
            if problem is not None:
                raise _at(i, stage, problem)
            inputs[stage.name] = wired
            if not _is_run_check(stage):  # it emits nothing for a next stage to read
                previous = stage.name
        return inputs

    def _infer_fields(
        self,
        by_name: dict[str, AnyStage],
        inputs: dict[str, tuple[str, ...]],
        order: tuple[str, ...],
    ) -> dict[str, FieldSet]:
        """The fields each stage's records have, checking every reference against them."""
        index = {s.name: i for i, s in enumerate(self.stages)}
        fields: dict[str, FieldSet] = {}
        for name in order:
            stage = by_name[name]
            upstream = [fields[n] for n in inputs[name]]
            seen = upstream[0] if upstream else FieldSet.closed(())
            for other in upstream[1:]:
                seen = seen.union(other)
            try:
                fields[name] = stage.output_fields(seen)
            except PipelineError as exc:
                raise _at(index[name], stage, exc.message) from None
        return fields

    def _check_parameters(self) -> None:
        """``{params.x}`` in a request template needs a parameter ``x``: a typo is found
        when the file loads, not at the first request."""
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, Fetch):
                continue
            used = {f.split(".")[1] for f in stage.template_fields() if f.startswith("params.")}
            unknown = sorted(used - set(self.params))
            if unknown:
                known = ", ".join(sorted(self.params)) or "none; define them in params = { … }"
                names = ", ".join(f"{{params.{u}}}" for u in unknown)
                raise _at(i, stage, f"{names} names no parameter (parameters: {known})")

    def stage(self, name: str) -> AnyStage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def order(self) -> tuple[str, ...]:
        """Stage names, every stage after all of its inputs."""
        return self._order

    def inputs_of(self, name: str) -> tuple[str, ...]:
        return self._inputs[name]

    def consumers_of(self, name: str) -> tuple[str, ...]:
        return self._consumers[name]

    def connectors(self) -> set[str]:
        return {s.connector for s in self.stages if isinstance(s, Fetch)}


def _as_stage(value: Any) -> Any:
    if callable(value) and not isinstance(value, Stage | type):
        fn: Callable[..., Any] = value
        return Transform(name=getattr(fn, "__name__", "transform"), call=fn)
    return value


def _input_problem(
    stage: AnyStage, wired: tuple[str, ...], by_name: dict[str, AnyStage]
) -> str | None:
    """Why ``stage`` cannot read ``wired``, or None when it can."""
    for name in wired:
        if name not in by_name:
            return f"reads unknown stage {name!r} (stages: {', '.join(by_name)})"
        if name == stage.name:
            return "reads itself"
        if isinstance(by_name[name], Store):
            return f"reads store stage {name!r}, which emits no records"
    if not wired and not isinstance(stage, Fetch) and not _is_run_check(stage):
        return "has no input: name one with 'from'"
    reads_one_fetch = len(wired) == 1 and isinstance(by_name[wired[0]], Fetch)
    if isinstance(stage, Check) and stage.on == "responses" and not reads_one_fetch:
        return "a response check reads exactly one fetch stage"
    return None


def _is_run_check(stage: Stage) -> bool:
    return isinstance(stage, Check) and stage.on == "run"


def _at(index: int, stage: Stage, message: str) -> PipelineError:
    return PipelineError(message, where=f"stages[{index}] ({stage.name})")


def _topological(stages: list[AnyStage], inputs: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Kahn's algorithm, keeping the written order among stages that are ready together."""
    pending = {s.name: set(inputs[s.name]) for s in stages}
    order: list[str] = []
    while pending:
        ready = [name for name, needs in pending.items() if not needs]
        if not ready:
            cycle = " → ".join(sorted(pending))
            raise PipelineError(f"stages form a cycle: {cycle}")
        for name in ready:
            del pending[name]
            order.append(name)
        for needs in pending.values():
            needs.difference_update(ready)
    return tuple(order)
