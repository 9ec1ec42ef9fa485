"""A fetch stage's task: fan-out workers, pagination chains and their records.

A source fetch fans out over its ``for_each`` items; a fetch with ``from`` fans out over
the records of its input. Either way a fixed set of workers (the connector's
concurrency, or fewer when fewer items are planned) takes items one at a time, so a slow
item never holds up the others and the gateway's limiters bound what is in flight.

Each item is a chain: the first request, then whatever its paginator asks for next.
Pages known in advance (a stated total with ``parallel = true``) are sent concurrently.
A request that fails for good is recorded and counted; it never stops the stage.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream

from podium.connectors import Paginator, Request, Response
from podium.pipeline import (
    CredentialError,
    Fetch,
    PipelineError,
    Record,
    RequestError,
    ResponseError,
    lookup,
)

from . import _streams
from ._checks import failure_data, response_data
from ._context import RunContext
from ._stage_io import Emit, Inbox, batches

Page = tuple[Response, list[Record]]


class FetchTask:
    """Runs one fetch stage for one run."""

    def __init__(self, ctx: RunContext, stage: Fetch, emit: Emit) -> None:
        self.ctx = ctx
        self.stage = stage
        self.emit = emit
        self.connector = ctx.gateway.connector(stage.connector)
        self.stats = ctx.stats.stages[stage.name]
        self.response_checks = ctx.response_checks(stage.name)
        self.cursor = ctx.cursors.get(stage.name)
        self.since = self.cursor.params() if self.cursor is not None else None
        concurrency = self.connector.config.concurrency
        planned = stage.fan_out_size()
        self.workers = max(1, concurrency if planned is None else min(planned, concurrency))
        # Set by the first request whose connector could not obtain its credential.
        self.credential_failure: CredentialError | None = None

    async def run(self, inbox: Inbox | None) -> None:
        if self.stage.inputs:
            await self._fan_out_over(inbox)
        else:
            await self._fan_out(self.stage.fan_out_items())

    # -- fan-out ----------------------------------------------------------------------------
    async def _fan_out(self, items: Iterator[dict[str, Any]]) -> None:
        """Workers share one iterator: taking the next item costs no scheduling."""

        async def work() -> None:
            for item in items:
                await self.item(item)
                self.stats.done += 1

        async with anyio.create_task_group() as tg:
            for i in range(self.workers):
                tg.start_soon(work, name=f"{self.stage.name}:worker-{i}")

    async def _fan_out_over(self, inbox: Inbox | None) -> None:
        """One item per input record, fed to the workers through a bounded stream."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](self.workers)

        async def feed() -> None:
            async with send:
                async for _source, batch in batches(self.ctx, self.stage.name, inbox):
                    for record in batch:
                        await _streams.send(send, record)

        async def work(items: ObjectReceiveStream[dict[str, Any]]) -> None:
            async with items:
                async for item in _streams.drain(items):
                    await self.item(item)
                    self.stats.done += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(feed, name=f"{self.stage.name}:feed")
            async with receive:
                for i in range(self.workers):
                    tg.start_soon(work, receive.clone(), name=f"{self.stage.name}:worker-{i}")

    # -- one item ---------------------------------------------------------------------------
    async def item(self, item: dict[str, Any]) -> None:
        """One fan-out item: build its first request, then follow its chain."""
        stage = self.stage
        params = self.ctx.params
        values = {**item, "params": params} if params else item
        try:
            request = self.connector.build_request(stage, values)
        except PipelineError as exc:
            self.stats.not_sent += 1
            self.ctx.event("request_not_built", exc.message, stage=stage.name)
            return
        if self.since:
            request = request.with_params(**self.since)
        carried = (
            {out: lookup(item, src) for out, src in stage.carry.items()} if stage.carry else None
        )
        paginator = self.connector.paginator(stage)
        if paginator is None:
            await self.page(request, carried)
        else:
            await self._chain(paginator, paginator.first(request), carried)

    async def _chain(
        self, paginator: Paginator, request: Request, carried: dict[str, Any] | None
    ) -> None:
        pending: Request | None = request
        last_url = request.url
        while pending is not None:
            page = await self.page(pending, carried)
            if page is None:
                return  # the failure is recorded; a shortfall would only repeat it
            response, records = page
            last_url = response.url
            try:
                pending = paginator.next(pending, response, records)
            except ResponseError as exc:  # the page's body cannot say what comes next
                self._bad_response(exc, response.url)
                return
            if pending is not None:
                rest = paginator.rest(pending)
                if rest is not None:
                    if not await self._pages(paginator, [pending, *rest], carried):
                        return
                    break
        problem = paginator.shortfall()
        if problem is not None:
            # Fewer records than the API said it has: never a silent ok.
            self.stats.failed += 1
            url = self.ctx.gateway.redact(last_url)
            self.ctx.event(
                "incomplete_pagination", f"{url}: {problem}", stage=self.stage.name, url=url
            )

    async def _pages(
        self, paginator: Paginator, requests: list[Request], carried: dict[str, Any] | None
    ) -> bool:
        """Pages known in advance, sent concurrently (the gateway's limiters bound them);
        False when any of them failed."""
        pages = iter(requests)
        failed = False

        async def work() -> None:
            nonlocal failed
            for request in pages:
                page = await self.page(request, carried)
                if page is None:
                    failed = True
                else:
                    paginator.count(len(page[1]))

        async with anyio.create_task_group() as tg:
            for i in range(min(len(requests), self.connector.config.concurrency)):
                tg.start_soon(work, name=f"{self.stage.name}:pages-{i}")
        return not failed

    async def page(self, request: Request, carried: dict[str, Any] | None) -> Page | None:
        """One logical request's records, emitted; None when it failed (recorded).

        Its outcome — an answer of any status, or the failure that prevented one — goes to
        the fetch's response checks first.
        """
        stats = self.stats
        if self.credential_failure is not None:
            stats.not_sent += 1  # the connector cannot authenticate: nothing goes out
            return None
        stats.requests += 1
        started = time.perf_counter()
        checks = self.response_checks
        try:
            response = await self.ctx.gateway.send(self.stage.connector, request)
        except RequestError as exc:
            if checks:
                self._observe(failure_data(exc, request, time.perf_counter() - started))
            self._failed(exc)
            return None
        if checks:  # building what a check reads costs a headers copy: only when read
            self._observe(response_data(response))
        try:
            records = self.connector.records(self.stage, response)
            if self.cursor is not None:
                self.cursor.observe(records)
        except ResponseError as exc:
            self._bad_response(exc, response.url)
            return None
        if carried:
            for record in records:
                record.update(carried)
        stats.records_out += len(records)
        if records:
            await self.emit(records)
        return response, records

    def _observe(self, data: dict[str, Any]) -> None:
        for tally in self.response_checks:
            tally.observe(data)

    def _failed(self, exc: RequestError) -> None:
        stage, stats = self.stage, self.stats
        if isinstance(exc, CredentialError):
            # Reported once, with its cause; every request it stops is counted as not sent.
            stats.requests -= 1
            stats.not_sent += 1
            if self.credential_failure is None:
                self.credential_failure = exc
                self.ctx.event("credential_failed", exc.message, stage=stage.name, **_detail(exc))
            return
        stats.failed += 1
        self.ctx.event("request_failed", exc.message, stage=stage.name, **_detail(exc))

    def _bad_response(self, exc: ResponseError, url: str) -> None:
        self.stats.failed += 1
        self.ctx.stats.connectors[self.stage.connector].failed += 1
        url = exc.url or self.ctx.gateway.redact(url)
        # The gateway's errors name the request already; a connector's name nothing.
        message = exc.message if exc.url else f"{url}: {exc.message}"
        self.ctx.event("bad_response", message, stage=self.stage.name, url=url, cause=exc.reason)


def _detail(exc: RequestError) -> dict[str, Any]:
    """What an event keeps of a failed request: where, the cause, how the API answered.
    (Texts are redacted when the event is recorded.)"""
    detail: dict[str, Any] = {"url": exc.url, "status": exc.status, "cause": exc.reason}
    if exc.request is not None and exc.url is not None:
        detail["first"] = f"{exc.request.method} {exc.url}"
    if exc.response is not None and exc.response.body:
        detail["excerpt"] = exc.response.excerpt()
    return detail
