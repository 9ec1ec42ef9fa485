"""Sagas: the side effects a run performed, undone in reverse order when the run fails.

A fetch with a side effect (POST, PUT, PATCH, DELETE) and a ``compensate`` request
records a *step* as soon as its side effect succeeded — the compensation rendered then,
from the item and the response (``{response.id}``), in its own short transaction, so a
crash right after still knows what to undo. When the run fails, the steps are undone
most recent first; each compensation goes through the gateway (the connector's retries
and limits) with an ``Idempotency-Key`` of its own, so an API that honours it undoes each
step exactly once however often the compensation is retried or the run re-recorded. A
compensation that still fails is recorded, dead-lettered, and the run's error says so.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from podium.connectors import Request, Response
from podium.pipeline import Fetch, PipelineError, RequestError

from ..storage import DeadLetterRow
from ._context import RunContext


def compensation_for(
    stage: Fetch, params: dict[str, Any], values: dict[str, Any], response: Response
) -> dict[str, Any]:
    """What undoes this item's side effect, rendered now: the response is at hand."""
    comp = stage.compensate
    assert comp is not None
    body = response.body_value()
    bound = {
        **values,
        "params": params,
        "response": body if isinstance(body, dict) else {"body": body, "status": response.status},
    }
    try:
        return {
            "connector": stage.connector,
            "method": comp.method,
            "path": comp.path_template.render(bound, quote=_quote),
            "params": comp.params_template.render(bound) if comp.params else {},
            "headers": comp.headers_template.render(bound) if comp.headers else {},
            "json": comp.body_template.render(bound) if comp.body is not None else None,
        }
    except PipelineError as exc:
        # Recorded as it is: the compensation will fail, visibly, rather than be lost.
        return {"connector": stage.connector, "error": f"cannot render compensate: {exc.message}"}


def _quote(value: Any) -> str:
    from urllib.parse import quote

    return str(value) if isinstance(value, int) else quote(str(value), safe="")


def has_compensations(ctx: RunContext) -> bool:
    return any(isinstance(s, Fetch) and s.compensate is not None for s in ctx.pipeline.stages)


async def compensate(ctx: RunContext) -> tuple[int, int]:
    """Undo the run's recorded steps, most recent first: (compensated, failed)."""
    assert ctx.journal is not None
    steps = await ctx.journal.steps_to_undo(ctx.run.id)
    undone = failed = 0
    for step in steps:
        spec = step.compensation
        error = spec.get("error")
        attempts = 0
        if error is None:
            connector = ctx.gateway.connector(spec["connector"])
            key = f"podium-{ctx.run.id}-undo-{step.stage}-{step.item}"
            request = Request(
                spec["method"],
                connector.url_for(spec["path"]),
                spec.get("params") or {},
                {**(spec.get("headers") or {}), "Idempotency-Key": key},
                spec.get("json"),
            )
            try:
                response = await ctx.gateway.send(spec["connector"], request)
                attempts = response.attempts
            except RequestError as exc:
                error, attempts = exc.message, exc.attempts
        if error is None:
            undone += 1
            await ctx.journal.settle_step(ctx.run.id, step.seq, "compensated", attempts, None)
            ctx.event(
                "compensated",
                f"undid {step.stage} item {step.item}: {spec['method']} {spec['path']}",
                stage=step.stage,
                seq=step.seq,
            )
            continue
        failed += 1
        await ctx.journal.settle_step(ctx.run.id, step.seq, "failed", attempts, error)
        ctx.event("compensation_failed", error, stage=step.stage, seq=step.seq)
        ctx.dead_letter(
            DeadLetterRow(
                run_id=ctx.run.id,
                pipeline=ctx.pipeline.name,
                stage=step.stage,
                kind="compensation",
                item=step.item,
                request={k: v for k, v in spec.items() if k != "error"},
                cause=error,
                attempts=attempts,
            )
        )
    if steps:
        logger.info("compensated {} step(s), {} failed", undone, failed)
    return undone, failed
