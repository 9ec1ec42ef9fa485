"""Sagas: the side effects a run performed, undone in reverse order when the run fails.

A fetch with a side effect (POST, PUT, PATCH, DELETE) and a ``compensate`` request — or
a transform whose ``call`` has a ``compensate`` callable — records a *step* as soon as its
side effect succeeded — the compensation rendered then,
from the item and the response (``{response.id}``), in its own short transaction, so a
crash right after still knows what to undo. When the run fails, the steps are undone
most recent first; each compensation goes through the gateway (the connector's retries
and limits) with an ``Idempotency-Key`` of its own, so an API that honours it undoes each
step exactly once however often the compensation is retried or the run re-recorded. A
compensation that still fails is recorded, dead-lettered, and the run's error says so.
"""

from __future__ import annotations

import inspect
from typing import Any

import anyio
from loguru import logger

from podium.connectors import Request, Response
from podium.pipeline import Fetch, PipelineError, RequestError, Transform
from podium.pipeline._refs import ref_name

from ..http import QuotaExhausted
from ..storage import DeadLetterRow
from ._context import RunContext

# A compensating callable is tried this often, CALL_BACKOFF × attempt seconds apart.
CALL_ATTEMPTS = 3
CALL_BACKOFF = 0.5


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
    return any(
        isinstance(s, Fetch | Transform) and s.compensate is not None for s in ctx.pipeline.stages
    )


async def compensate(ctx: RunContext) -> tuple[int, int]:
    """Undo the run's recorded steps, most recent first: (compensated, failed)."""
    assert ctx.journal is not None
    steps = await ctx.journal.steps_to_undo(ctx.run.id)
    undone = failed = 0
    for step in steps:
        spec = step.compensation
        error = spec.get("error")
        attempts = 0
        if spec.get("kind") == "call":
            error, attempts = await _undo_call(ctx, step.stage, spec)
        elif error is None:
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
            except QuotaExhausted as exc:  # left to be undone: it stays failed, lettered
                error = exc.message
        if error is None:
            undone += 1
            await ctx.journal.settle_step(ctx.run.id, step.seq, "compensated", attempts, None)
            how = spec["ref"] if spec.get("kind") == "call" else f"{spec['method']} {spec['path']}"
            ctx.event(
                "compensated",
                f"undid {step.stage} item {step.item}: {how}",
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


async def _undo_call(
    ctx: RunContext, stage_name: str, spec: dict[str, Any]
) -> tuple[str | None, int]:
    """A transform's ``compensate`` callable on what its call was given and returned,
    tried up to CALL_ATTEMPTS times: (why it still failed or None, attempts)."""
    stage = ctx.pipeline.stage(stage_name)
    fn = stage.compensate if isinstance(stage, Transform) else None
    if fn is None:
        return f"stage {stage_name!r} no longer says how to undo its calls", 0
    error: str | None = None
    for attempt in range(1, CALL_ATTEMPTS + 1):
        try:
            result = fn(spec.get("record"), spec.get("result"))
            if inspect.isawaitable(result):
                await result
            return None, attempt
        except Exception as exc:  # user code: recorded, retried, then dead-lettered
            error = ctx.gateway.redact(f"{ref_name(fn)} raised {type(exc).__name__}: {exc}")
            if attempt < CALL_ATTEMPTS:
                await anyio.sleep(CALL_BACKOFF * attempt)
    return error, CALL_ATTEMPTS
