"""Wiring a pipeline's stages into tasks and streams, and running them."""

from __future__ import annotations

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from podium.pipeline import Check, Fetch, Pipeline, Transform

from ._context import RunContext
from ._stage_io import Item, Outbox
from ._stage_tasks import fusible, run_stage

# Batches buffered between two stages; with fetch batches of ~20-100 records this bounds
# what waits in memory at a few thousand records per edge.
EDGE_BUFFER = 32


def fusion(pipeline: Pipeline) -> dict[str, tuple[str, ...]]:
    """Chains of per-batch stages that run inside the task of the stage before them.

    A transform or check whose only input has no other consumer gets its batches straight
    from that producer's emit call: no stream, no task switch, the same results.
    """
    chains: dict[str, tuple[str, ...]] = {}
    absorbed: set[str] = set()
    for name in pipeline.order:
        if name in absorbed:
            continue
        chain: list[str] = []
        current = name
        while True:
            consumers = pipeline.consumers_of(current)
            if len(consumers) != 1:
                break
            nxt = consumers[0]
            if not fusible(pipeline.stage(nxt)) or len(pipeline.inputs_of(nxt)) != 1:
                break
            chain.append(nxt)
            current = nxt
        chains[name] = tuple(chain)
        absorbed.update(chain)
    return chains


async def run_stages(ctx: RunContext) -> None:
    pipeline = ctx.pipeline
    chains = fusion(pipeline)
    inboxes: dict[str, MemoryObjectReceiveStream[Item]] = {}
    senders: dict[str, MemoryObjectSendStream[Item]] = {}
    buffer = _edge_buffer(ctx)
    for name in chains:
        if pipeline.inputs_of(name):
            send, receive = anyio.create_memory_object_stream[Item](buffer)
            senders[name], inboxes[name] = send, receive
    outboxes: dict[str, list[Outbox]] = {}
    for name, chain in chains.items():
        tail = chain[-1] if chain else name
        outboxes[name] = [senders[c].clone() for c in pipeline.consumers_of(tail)]
    # The originals were only templates for the clones: close them so that each inbox ends
    # exactly when its producers do.
    for template in senders.values():
        template.close()
    async with anyio.create_task_group() as tg:
        for name, chain in chains.items():
            tg.start_soon(
                run_stage,
                ctx,
                pipeline.stage(name),
                inboxes.get(name),
                outboxes[name],
                _fused_stages(pipeline, chain),
                name=f"stage:{name}",
            )


def _edge_buffer(ctx: RunContext) -> int:
    """EDGE_BUFFER, or a place for each worker that waits for its batch's commit.

    Such a worker holds its batch until the store commits it either way; on a full edge
    it holds it blocked in ``send``, at the cost of a wait and a wake-up per batch (a
    store that commits several pages at once gets them in bursts as wide as the workers).
    The larger buffer holds no more records than those workers' frames would.
    """
    if not ctx.progress_kept:
        return EDGE_BUFFER
    waiting = 0
    for name in ctx.durability.acked:
        stage = ctx.pipeline.stage(name)
        if isinstance(stage, Fetch):
            concurrency = ctx.gateway.connector(stage.connector).config.concurrency
            planned = stage.fan_out_size()
            waiting += concurrency if planned is None else min(planned, concurrency)
    return max(EDGE_BUFFER, waiting)


def _fused_stages(pipeline: Pipeline, chain: tuple[str, ...]) -> tuple[Transform | Check, ...]:
    stages = tuple(pipeline.stage(n) for n in chain)
    fused = tuple(s for s in stages if isinstance(s, Transform | Check))
    assert len(fused) == len(stages), "only transforms and checks are fused"
    return fused
