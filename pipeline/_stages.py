"""The stage kinds: fetch → transform → aggregate → check → store.

Stages are plain, frozen pydantic models: the TOML form validates straight into them and
Python code builds the same objects. They hold no I/O — a ``Fetch`` names its connector
and describes its requests; the orchestrator resolves the connector and does the I/O.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._aggregate import GroupBy, Merger, parse_metric
from ._alerting import Attachments
from ._coerce import CoerceName
from ._errors import PipelineError
from ._expr import Expr
from ._fields import FieldSet
from ._formats import CsvOptions, FetchFormat
from ._refs import CallableRef, ClassRef
from ._template import Template, TreeTemplate
from ._transform import Record, Rejection, compile_ops
from ._windows import Window

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
IDENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Stage(BaseModel):
    """A named step; ``inputs`` (``from`` in TOML) names the stages it reads."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        arbitrary_types_allowed=True,
        allow_inf_nan=False,
    )

    name: str = Field(pattern=NAME_PATTERN)
    inputs: tuple[str, ...] = Field(default=(), alias="from")

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    def default_inputs(self, previous: str | None) -> tuple[str, ...]:
        """Inputs when none are given: the stage before, as in a linear chain."""
        return (previous,) if previous else ()

    def output_fields(self, inputs: FieldSet) -> FieldSet:
        """Fields of the records this stage emits; raises PipelineError on bad references."""
        return inputs


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    range: tuple[int, int] | tuple[int, int, int]


class Incremental(BaseModel):
    """Fetch only what is new since the last run.

    With ``cursor_field`` and ``param``: the highest ``cursor_field`` value stored so far
    is sent as the request parameter ``param`` (``initial`` on the first run). With
    ``window``: the time since the mark is asked for in date windows, one request each
    (see ``Window``), and the mark is the end of the last window.

    A fetch that fans out keeps one mark per *partition* — per repository, per city —
    so a new item starts from the beginning and each goes on from its own mark. The
    partition is ``partition`` (a template over the item, ``"{owner}/{repo}"``), else the
    values of the fields the request's templates use.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    # A record field (``a.b`` for nested) whose values only grow: a timestamp or an id.
    cursor_field: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"
    )
    param: str | None = None
    initial: str | int | float | None = None
    window: Window | None = None
    partition: str | None = None

    @model_validator(mode="after")
    def _cursor_or_window(self) -> Incremental:
        if self.window is None and (self.cursor_field is None or self.param is None):
            raise ValueError("needs cursor_field and param, or a window")
        if self.window is not None and (self.param is not None or self.initial is not None):
            raise ValueError(
                "a window sends its own bounds (start_param, end_param) and starts at its "
                "start: leave out param and initial"
            )
        if self.partition is not None:
            Template(self.partition)
        return self


# The token names of the paginators that can fill a path hole, when paginate names none.
_PATH_HOLE_DEFAULTS = {"page_number": "page", "cursor": "cursor", "offset": "offset"}
SIDE_EFFECT_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FailurePolicy = Literal["continue", "fail", "compensate"]


class _RequestTemplates:
    """A request's parts as templates, compiled once per stage (not once per request):
    what a fetch and the request that undoes its side effect share."""

    if TYPE_CHECKING:  # the fields of the models that use it
        path: str
        params: dict[str, Any]
        headers: dict[str, str]
        body: Any

    @cached_property
    def path_template(self) -> Template:
        return Template(self.path)

    @cached_property
    def params_template(self) -> TreeTemplate:
        return TreeTemplate(self.params)

    @cached_property
    def headers_template(self) -> TreeTemplate:
        return TreeTemplate(self.headers)

    @cached_property
    def body_template(self) -> TreeTemplate:
        return TreeTemplate(self.body)

    def template_fields(self) -> set[str]:
        """Every field the request's templates read."""
        return (
            set(self.path_template.fields)
            | self.params_template.fields
            | self.headers_template.fields
            | self.body_template.fields
        )


class Compensate(_RequestTemplates, BaseModel):
    """The request that undoes a fetch's side effect, rendered per item when the side
    effect succeeded: templates see the item's fields, ``{params.x}`` and the response
    (``{response.id}``, the answer's JSON body)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    method: Literal["DELETE", "POST", "PUT", "PATCH"] = "DELETE"
    path: str
    params: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None


class Fetch(_RequestTemplates, Stage):
    """Requests on a connector: once, once per ``for_each`` item, or once per input record.

    A fetch whose method changes something (POST, PUT, PATCH, DELETE) is a side effect:
    each request carries an ``Idempotency-Key`` derived from the run and the item (the
    same on every retry and every resume), and ``compensate`` says how to undo it when
    the run fails. ``on_failure`` decides what a request that fails for good does to the
    run: ``continue`` (the policy's ratio decides at the end; the default for reads),
    ``fail`` (stop now), ``compensate`` (stop now and undo what the run did; the default
    for side effects).
    """

    kind: Literal["fetch"] = "fetch"
    connector: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    records: str | None = None
    # How bodies become records (see _formats.py); unset: the connector's ``format``.
    # "none": the answers are not read as records, only seen by response checks (a
    # health endpoint answering HTML, a monitor); the fetch emits nothing.
    format: FetchFormat | None = None
    # CSV options for this fetch; unset: the connector's ``csv``.
    csv: CsvOptions | None = None
    for_each: list[Any] | Range | None = None
    as_: str = Field(default="value", alias="as", pattern=IDENT_PATTERN)
    carry: dict[str, str] = Field(default_factory=dict)
    paginate: dict[str, Any] | None = None
    # Response rules, checked before the connector's: validated by the connector (its
    # ``check_fetch``), like ``paginate``.
    rules: list[dict[str, Any]] | None = None
    incremental: Incremental | None = None
    compensate: Compensate | None = None
    on_failure: FailurePolicy | None = None
    # Send an Idempotency-Key header; unset: on for side effects, off for reads.
    idempotency_key: bool | None = None
    # A POST that only reads (a search, a GraphQL query): not a side effect, so it is
    # sent in dry runs, carries no Idempotency-Key (every page of a chain would carry
    # the same one) and a failure does not compensate.
    read_only: bool = False

    @property
    def side_effect(self) -> bool:
        return self.method in SIDE_EFFECT_METHODS and not self.read_only

    @property
    def failure_policy(self) -> FailurePolicy:
        if self.on_failure is not None:
            return self.on_failure
        return "compensate" if self.side_effect else "continue"

    @property
    def sends_idempotency_key(self) -> bool:
        return self.side_effect if self.idempotency_key is None else self.idempotency_key

    @field_validator("carry", mode="before")
    @classmethod
    def _carry_list(cls, value: Any) -> Any:
        # A list of field names carries each under its own name; anything else in a list
        # is left for pydantic to refuse ("carry: input should be a valid dictionary").
        if isinstance(value, list) and all(isinstance(name, str) for name in value):
            return {name: name for name in value}
        return value

    @field_validator("records")
    @classmethod
    def _records_expression(cls, value: str | None) -> str | None:
        if value is not None:
            Expr(value)  # a mistake is reported at this key
        return value

    @model_validator(mode="after")
    def _compile(self) -> Fetch:
        if self.for_each is not None and self.inputs:
            raise ValueError("use either 'for_each' or 'from', not both")
        if self.read_only and self.method in ("PUT", "PATCH", "DELETE"):
            raise ValueError(f"read_only = true is for a POST that reads, not {self.method}")
        if self.format == "none" and (self.records or self.paginate or self.incremental):
            raise ValueError(
                "format = \"none\" reads no records: 'records', 'paginate' and "
                "'incremental' need them"
            )
        # Compiled once here, so mistakes surface at load time; cached_property keeps the
        # results as plain attributes, which the per-request path reads cheaply.
        _ = self.path_template, self.records_expr, self.params_template
        _ = self.headers_template, self.body_template
        return self

    def default_inputs(self, previous: str | None) -> tuple[str, ...]:
        # A fetch is a source unless it says what it fans out over.
        return ()

    @cached_property
    def records_expr(self) -> Expr | None:
        return Expr(self.records) if self.records else None

    @cached_property
    def paginate_hole(self) -> str | None:
        """The ``{name}`` in ``path`` that the paginator fills (``in = "path"``), not the
        fan-out input: its ``param`` (``offset_param``), or that key's default (the
        connector's paginator model checks the hole is there)."""
        paginate = self.paginate or {}
        if paginate.get("in") != "path":
            return None
        default = _PATH_HOLE_DEFAULTS.get(str(paginate.get("type")))
        name = paginate.get("param", paginate.get("offset_param", default))
        return name if isinstance(name, str) else None

    def template_fields(self) -> set[str]:
        return (
            (set(self.path_template.fields) - {self.paginate_hole})
            | self.params_template.fields
            | self.headers_template.fields
            | self.body_template.fields
        )

    def output_fields(self, inputs: FieldSet) -> FieldSet:
        item_fields = inputs if self.inputs else self._for_each_fields()
        wanted = {f for f in self.template_fields() if not f.startswith("params.")}
        item_fields.require(wanted, what="a request template", source="the fan-out input")
        item_fields.require(self.carry.values(), what="'carry'", source="the fan-out input")
        if self.compensate is not None:
            undo = {
                f
                for f in self.compensate.template_fields()
                if not f.startswith(("params.", "response."))
            }
            item_fields.require(undo, what="'compensate'", source="the fan-out input")
        if self.incremental is not None and self.incremental.partition is not None:
            used = Template(self.incremental.partition).fields
            item_fields.require(used, what="the incremental partition", source="the fan-out input")
        return FieldSet.unknown(self.carry)

    def _for_each_fields(self) -> FieldSet:
        if self.for_each is None:
            return FieldSet.closed(())
        if isinstance(self.for_each, Range):
            return FieldSet.closed((self.as_,))
        names: set[str] = set()
        for item in self.for_each:
            names.update(item if isinstance(item, dict) else (self.as_,))
        return FieldSet.closed(names)

    def fan_out_items(self) -> Iterator[dict[str, Any]]:
        """Bindings for a source fetch: one per ``for_each`` item, or a single empty one."""
        if self.for_each is None:
            yield {}
        elif isinstance(self.for_each, Range):
            for value in range(*self.for_each.range):
                yield {self.as_: value}
        else:
            for item in self.for_each:
                yield dict(item) if isinstance(item, dict) else {self.as_: item}

    def fan_out_size(self) -> int | None:
        if self.inputs:
            return None
        if self.for_each is None:
            return 1
        if isinstance(self.for_each, Range):
            return len(range(*self.for_each.range))
        return len(self.for_each)


class Transform(Stage):
    """Reshapes records: built-in operations, and/or a Python callable (sync or async).

    ``call`` receives one record and returns a record, a list of records, or None to drop
    it; with ``per = "batch"`` it receives and returns a list.

    A ``call`` that does something (creates a ticket, sends a message) may say how to undo
    it: ``compensate`` receives the record the call was given and what it returned, and
    runs — most recent first, with the run's other compensations — when the run fails.
    ``on_failure``: a call that raises ends the run (``fail``; ``compensate`` undoes what
    the run did first, the default with ``compensate``), or ``continue``: the record is
    rejected (dead-lettered) and the run goes on.
    """

    kind: Literal["transform"] = "transform"
    call: CallableRef | None = None
    per: Literal["record", "batch"] = "record"
    compensate: CallableRef | None = None
    on_failure: FailurePolicy | None = None
    compute: dict[str, str] = Field(default_factory=dict)
    coerce: dict[str, CoerceName] = Field(default_factory=dict)
    filter: str | None = None
    rename: dict[str, str] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    select: list[str] | None = None

    @field_validator("compute")
    @classmethod
    def _compute_expressions(cls, value: dict[str, str]) -> dict[str, str]:
        for field, source in value.items():
            try:
                Expr(source)
            except PipelineError as exc:
                raise ValueError(f"{field}: {exc.message}") from None
        return value

    @field_validator("filter", mode="after")
    @classmethod
    def _filter_expression(cls, value: str | None) -> str | None:
        if value is not None:
            Expr(value)
        return value

    @model_validator(mode="after")
    def _compile(self) -> Transform:
        if self.ops is None and self.call is None:
            raise ValueError("a transform needs 'call' or at least one operation")
        if (self.compensate is not None or self.on_failure is not None) and self.call is None:
            raise ValueError("'compensate' and 'on_failure' go with 'call'")
        if self.compensate is not None and self.per != "record":
            raise ValueError("'compensate' needs per = \"record\": each call is undone on its own")
        if self.on_failure == "continue" and self.per != "record":
            raise ValueError('on_failure = "continue" needs per = "record"')
        return self

    @property
    def failure_policy(self) -> FailurePolicy:
        if self.on_failure is not None:
            return self.on_failure
        return "compensate" if self.compensate is not None else "fail"

    @property
    def steps_by_record(self) -> bool:
        """Whether the engine calls ``call`` record by record itself (to record each
        side effect as it happens, or to reject a record whose call raised)."""
        return self.compensate is not None or self.on_failure == "continue"

    async def call_one(self, record: Record) -> list[Record]:
        """``call`` on one record: what it returned, as a list."""
        fn = self.call
        assert fn is not None
        result = fn(record)
        if self._is_async:
            result = await result
        if result is None:
            return []
        return list(result) if isinstance(result, list) else [result]

    @cached_property
    def ops(self) -> Callable[[list[Record]], tuple[list[Record], list[Rejection]]] | None:
        """The built-in operations as one batch function (None when there are none)."""
        return compile_ops(
            compute={f: Expr(src) for f, src in self.compute.items()},
            coerce=dict(self.coerce),
            filter_=Expr(self.filter) if self.filter else None,
            rename=dict(self.rename),
            drop=list(self.drop),
            select=list(self.select) if self.select is not None else None,
        )

    @cached_property
    def _is_async(self) -> bool:
        return self.call is not None and inspect.iscoroutinefunction(self.call)

    def output_fields(self, inputs: FieldSet) -> FieldSet:
        fields = FieldSet.unknown() if self.call is not None else inputs
        fields = fields.plus(self.compute)
        fields.require(self.coerce, what="'coerce'", source="the input")
        fields.require(self.rename, what="'rename'", source="the input")
        fields = fields.minus(self.rename).plus(self.rename.values()).minus(self.drop)
        if self.select is not None:
            fields.require(self.select, what="'select'", source="the input")
            fields = FieldSet.closed(self.select)
        return fields

    async def apply(self, batch: list[Record]) -> tuple[list[Record], list[Rejection]]:
        """Run the callable (if any), then the built-in operations, on one batch."""
        if self.call is not None:
            batch = await self._call(batch)
        ops = self.ops
        if ops is None:
            return batch, []
        return ops(batch)

    async def _call(self, batch: list[Record]) -> list[Record]:
        fn = self.call
        assert fn is not None
        if self.per == "batch":
            result = fn(batch)
            if self._is_async:
                result = await result
            return list(result or [])
        out: list[Record] = []
        for record in batch:
            result = fn(record)
            if self._is_async:
                result = await result
            if result is None:
                continue
            if isinstance(result, list):
                out.extend(result)
            else:
                out.append(result)
        return out


class Aggregate(Stage):
    """Merges records from several inputs by key, or reduces records by group."""

    kind: Literal["aggregate"] = "aggregate"
    merge_on: list[str] | None = None
    how: Literal["outer", "inner"] = "outer"
    group_by: list[str] | None = None
    metrics: dict[str, str] = Field(default_factory=dict)

    @field_validator("merge_on", "group_by", mode="before")
    @classmethod
    def _one_or_many_fields(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> Aggregate:
        if (self.merge_on is None) == (self.group_by is None):
            raise ValueError("an aggregate needs exactly one of 'merge_on' or 'group_by'")
        if self.merge_on is not None and self.metrics:
            raise ValueError("'metrics' go with 'group_by', not with 'merge_on'")
        for spec in self.metrics.values():
            parse_metric(spec)
        return self

    def output_fields(self, inputs: FieldSet) -> FieldSet:
        if self.merge_on is not None:
            inputs.require(self.merge_on, what="'merge_on'", source="an input")
            return inputs
        assert self.group_by is not None
        inputs.require(self.group_by, what="'group_by'", source="the input")
        used = {f for _, f in map(parse_metric, self.metrics.values()) if f}
        inputs.require(used, what="'metrics'", source="the input")
        return FieldSet.closed([*self.group_by, *self.metrics])

    def accumulator(self, inputs: tuple[str, ...]) -> Merger | GroupBy:
        """A fresh accumulator; ``inputs`` are the stage's wired inputs, in order."""
        if self.merge_on is not None:
            return Merger(self.merge_on, inputs, self.how)
        assert self.group_by is not None
        return GroupBy(self.group_by, self.metrics)


class Check(Stage):
    """A condition on records, responses or the run: a JMESPath expression that must be
    truthy, or a list of them that must all be (each failing one is named).

    Records pass through a check unchanged, unless ``drop`` removes the failing ones.
    A response check sees every request's final outcome — an answer of any status, a
    timeout, a refused connection, a TLS failure — as ``{status, url, elapsed_ms,
    connected, error, cause, headers, body, certificate}``; a run check reads the run's
    counts once the run has finished. ``alerts`` notify when the check keeps failing.
    """

    kind: Literal["check"] = "check"
    on: Literal["records", "responses", "run"] = "records"
    expect: str | list[str]
    severity: Literal["error", "warn"] = "error"
    drop: bool = False
    description: str = ""
    alerts: Attachments | None = None

    @field_validator("expect")
    @classmethod
    def _expect_expression(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not value:
                raise ValueError("a check needs at least one condition")
            for i, condition in enumerate(value):
                try:
                    Expr(condition)
                except PipelineError as exc:
                    raise ValueError(f"condition {i + 1}: {exc.message}") from None
        else:
            Expr(value)
        return value

    @model_validator(mode="after")
    def _compile(self) -> Check:
        _ = self.conditions
        if self.drop and self.on != "records":
            raise ValueError("'drop' applies to record checks only")
        if self.on == "run" and self.inputs:
            raise ValueError("a run check reads the run's counts, not a stage: remove 'from'")
        return self

    def default_inputs(self, previous: str | None) -> tuple[str, ...]:
        # A run check is evaluated once, after every stage, on the run's counts.
        return () if self.on == "run" else super().default_inputs(previous)

    @cached_property
    def conditions(self) -> tuple[Expr, ...]:
        """Every condition, compiled; the check passes when all are truthy."""
        sources = [self.expect] if isinstance(self.expect, str) else self.expect
        return tuple(Expr(c) for c in sources)

    @property
    def expect_text(self) -> str:
        """The conditions as one line, for tables and the journal."""
        if isinstance(self.expect, str):
            return self.expect
        return " && ".join(self.expect) if len(self.expect) > 1 else self.expect[0]


class Store(Stage):
    """Upserts records into a table keyed by ``key``, in batches, one transaction each."""

    kind: Literal["store"] = "store"
    table: str = Field(pattern=IDENT_PATTERN)
    key: list[str] = Field(min_length=1)
    model: ClassRef | None = None
    batch_size: int = Field(default=2000, ge=1, le=100_000)
    flush_seconds: float = Field(default=2.0, gt=0)

    @field_validator("key", mode="before")
    @classmethod
    def _one_or_many_keys(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def output_fields(self, inputs: FieldSet) -> FieldSet:
        inputs.require(self.key, what="the store key", source="the input")
        return FieldSet.closed(())


AnyStage = Fetch | Transform | Aggregate | Check | Store
STAGE_KINDS: dict[str, type[Stage]] = {
    "fetch": Fetch,
    "transform": Transform,
    "aggregate": Aggregate,
    "check": Check,
    "store": Store,
}
