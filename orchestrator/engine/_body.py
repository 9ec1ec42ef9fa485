"""A single-request fetch whose body is read as it arrives: NDJSON, CSV, XML (or ``auto``).

The request asks the transport for a streamed body; each chunk goes through the
connector's decoder, and the records go downstream in batches of ``STREAM_BATCH`` as
they are complete — so a body larger than memory passes in the size of a few batches:
the edges between stages are bounded, and a slow store slows the read down (TCP's own
backpressure reaches the server). Only the last batch carries the item's mark: a run
that stops mid-body fetches the item again on resume, and the store's upserts make the
repeated rows one.

A body that breaks — a line the decoder cannot read, a connection lost mid-body — keeps
what was read before it: those records went on already; the item is recorded as a bad
response (or a failed request) with the line, dead-lettered and not marked done, and
the run says it is incomplete. A retry would repeat what went downstream, so a body is
never retried once it began; a resume fetches it again.

A transport that cannot stream (a cassette replay, ``MockTransport``) answers whole;
the same decoder reads that body in slices, so a replay yields the same records.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio.lowlevel

from podium.connectors import Connector, Request, Response
from podium.pipeline import Fetch, Record, RequestError, ResponseError, TransportError

if TYPE_CHECKING:
    from ._fetch import FetchTask

STREAM_BATCH = 1000
# A whole body (a replay) is fed in slices of this size, as a stream would arrive.
SLICE = 256 * 1024


async def stream_item(
    task: FetchTask,
    request: Request,
    key: str,
    values: dict[str, Any],
    carried: dict[str, Any] | None,
) -> None:
    """One item of a single-request streamed fetch: its records in batches, then its mark."""
    response = await task._answer(replace(request, stream=True), key, values, 1)
    if response is None:
        return  # recorded as a failed request
    if response.action == "ignore":  # a response rule said so: no records, item done
        task.stats.ignored += 1
        if response.stream is not None:
            await response.stream.aclose()
        await task._emit_marked([], task._marks(key, 1, done=True))
        return
    tracker = task._trackers.get(key)
    try:
        async with aclosing(record_batches(task.connector, task.stage, response)) as batches:
            async for records in batches:
                if tracker is not None:
                    tracker.observe(records)
                await task._emit((response, records), carried, ())
    except ResponseError as exc:
        exc.request = exc.request or response.request
        task._bad_response(exc, response.url, key, values, 1)
        return
    except TransportError as exc:
        task._failed(_located(task, exc, response), key, values, 1, response.request)
        return
    finally:
        if response.stream is not None:
            await response.stream.aclose()
    await task._emit_marked([], task._marks(key, 1, done=True))


async def record_batches(
    connector: Connector, fetch: Fetch, response: Response
) -> AsyncGenerator[list[Record], None]:
    """The response's records in batches of at most ``STREAM_BATCH``; an error (a bad
    line, a lost connection) comes after the records read before it."""
    decoder = connector.decoder(fetch, response)
    if decoder is None:  # ``auto`` found a JSON document: it is read whole
        if response.stream is not None:
            response.body = b"".join([chunk async for chunk in response.stream.chunks()])
        yield connector.records(fetch, response)
        return
    pending: list[Record] = []
    try:
        async for chunk in _chunks(response):
            pending.extend(decoder.feed(chunk))
            while len(pending) >= STREAM_BATCH:
                yield pending[:STREAM_BATCH]
                del pending[:STREAM_BATCH]
        pending.extend(decoder.close())
    except RequestError:  # a bad line, or the connection lost mid-body
        if pending:
            yield pending
        raise
    while pending:
        yield pending[:STREAM_BATCH]
        del pending[:STREAM_BATCH]


async def _chunks(response: Response) -> AsyncIterator[bytes]:
    if response.stream is not None:
        async for chunk in response.stream.chunks():
            yield chunk
        return
    body = response.body
    for start in range(0, len(body), SLICE):
        yield body[start : start + SLICE]
        await anyio.lowlevel.checkpoint()


def _located(task: FetchTask, exc: TransportError, response: Response) -> TransportError:
    """The transport's mid-body error, with the (redacted) URL it happened on."""
    url = task.ctx.gateway.redact(response.url)
    return type(exc)(
        f"{response.request.method} {url}: {exc.message}",
        request=response.request,
        attempts=response.attempts,
        url=url,
        reason=exc.reason,
        connected=True,
    )
