"""What makes a run resumable: which fetch items are checkpointed, where their marks must
arrive, how an item is named, and what the pipeline was when the run started.

A fetch stage is *checkpointed* when no other fetch stage fans out over its records (a
"leaf" fetch): its items are what a resume skips. A fetch that feeds another fetch (a
list of cities for a per-city fetch) runs again on resume — its requests are few, and
its records are what the next stage's items are made of, so they are needed again.

An item is done when its final mark reached every end of the run that its records
reach: each store (committed with the rows) and each stage nothing reads from.

A checkpointed fetch whose records reach its ends through transforms and checks only is
*acknowledged*: each worker waits until its item is committed before it takes another,
so a crash redoes at most what the workers had in hand — the connector's concurrency.
(Behind an aggregate, which emits only at the end, the workers do not wait.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from podium.pipeline import Aggregate, Fetch, Pipeline


@dataclass(frozen=True, slots=True)
class DurabilityPlan:
    # Leaf fetch stages → the ends of the run their records reach.
    sinks: dict[str, frozenset[str]]
    # Those whose records reach their ends through no aggregate.
    acked: frozenset[str] = frozenset()

    @classmethod
    def of(cls, pipeline: Pipeline) -> DurabilityPlan:
        sinks: dict[str, frozenset[str]] = {}
        acked: set[str] = set()
        for stage in pipeline.stages:
            if isinstance(stage, Fetch):
                reached = _ends(pipeline, stage.name)
                if reached is not None:
                    sinks[stage.name], direct = reached
                    if direct:
                        acked.add(stage.name)
        return cls(sinks, frozenset(acked))

    def checkpointed(self, stage: str) -> bool:
        return stage in self.sinks


def _ends(pipeline: Pipeline, start: str) -> tuple[frozenset[str], bool] | None:
    """The ends reachable from ``start``, and whether no aggregate stands on the way;
    None when another fetch fans out over it."""
    ends: set[str] = set()
    direct = True
    pending, seen = [start], {start}
    while pending:
        name = pending.pop()
        consumers = pipeline.consumers_of(name)
        if not consumers:
            ends.add(name)
        for consumer in consumers:
            stage = pipeline.stage(consumer)
            if isinstance(stage, Fetch):
                return None
            if isinstance(stage, Aggregate):
                direct = False
            if consumer not in seen:
                seen.add(consumer)
                pending.append(consumer)
    return frozenset(ends), direct


def item_key(index: int | None, values: dict[str, Any]) -> str:
    """``#<index>`` for a ``for_each`` item (the list is part of the pipeline's hash, so
    the index is stable); a digest of the values for an item made from a record."""
    if index is not None:
        return f"#{index}"
    digest = hashlib.sha1(orjson.dumps(values, option=orjson.OPT_SORT_KEYS, default=str))
    return digest.hexdigest()[:20]


def pipeline_hash(pipeline: Pipeline, params: dict[str, Any]) -> str:
    """What the pipeline does, as a digest: its stages and the run's parameters. Not its
    description, schedule, time budget or failure policy: those do not change what an
    item produces, so changing them does not stop an interrupted run from continuing.

    Settings left at their defaults are not part of it: a newer podium that adds an
    optional setting can still continue a run an older one was interrupted in. Each
    stage's class is, since a stage's kind may be one of the defaults left out."""
    definition = pipeline.model_dump(mode="json", include={"name", "stages"}, exclude_defaults=True)
    kinds = [type(stage).__name__ for stage in pipeline.stages]
    body = orjson.dumps(
        {"pipeline": definition, "kinds": kinds, "params": params},
        option=orjson.OPT_SORT_KEYS,
        default=str,
    )
    return hashlib.sha256(body).hexdigest()
