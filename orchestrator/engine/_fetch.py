"""A fetch stage's task: fan-out workers, pagination chains, and their records.

A source fetch fans out over its ``for_each`` items; a fetch with ``from`` fans out over
the records of its input. Either way a fixed set of workers (the connector's
concurrency, or fewer when fewer items are planned) takes items one at a time, so a slow
item never holds up the others and the gateway's limiters bound what is in flight.

Each item is a chain: the first request, then whatever its paginator asks for next.
Pages known in advance (a stated total with ``parallel = true``) are sent concurrently.
A request that fails for good is recorded, counted and dead-lettered; whether it stops
the run is the stage's ``on_failure``.

Every batch goes downstream with its *mark* — which item, how many pages, whether the
chain is done and where it would go on — so a resumed run skips what an earlier attempt
carried to the run's ends and continues a chain from its last carried page. Each page of
a parallel set has a mark of its own: a resume sends the first page again (it is what
says which pages there are) and then only the pages not carried.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    StageError,
    lookup,
)

from ..http import QuotaExhausted
from ..storage import DeadLetterRow, Mark, page_item
from . import _streams
from ._body import stream_item
from ._checks import failure_data, response_data
from ._context import RunContext
from ._durability import item_key
from ._incremental import Tracker, WindowTracker
from ._saga import compensation_for
from ._stage_io import Emit, Inbox, Marks, batches

Page = tuple[Response, list[Record]]
Item = tuple[str, dict[str, Any]]  # (item key, the values its templates render from)
# An incremental item's parameters (a mark, or a window's bounds) and its tracker.
Window = tuple[dict[str, Any], "Tracker"] | None


class FetchTask:
    """Runs one fetch stage for one run."""

    def __init__(self, ctx: RunContext, stage: Fetch, emit: Emit) -> None:
        self.ctx = ctx
        self.stage = stage
        self.emit = emit
        self.connector = ctx.gateway.connector(stage.connector)
        self.stats = ctx.stats.stages[stage.name]
        self.response_checks = ctx.response_checks(stage.name)
        self.rules = self.connector.response_rules(stage)
        self.cursors = ctx.cursors.get(stage.name)
        self._trackers: dict[str, Tracker] = {}  # item key → its partition's tracker
        concurrency = self.connector.config.concurrency
        planned = stage.fan_out_size()
        self.workers = max(1, concurrency if planned is None else min(planned, concurrency))
        # Set by the first request whose connector could not obtain its credential.
        self.credential_failure: CredentialError | None = None
        self.marked = ctx.progress_kept and ctx.durability.checkpointed(stage.name)
        self.sinks = ctx.durability.sinks.get(stage.name, frozenset())
        # Each worker waits for its item's commit before it takes another (see _durability).
        self.acked = self.marked and stage.name in ctx.durability.acked
        # What is the same for every item, decided once (this runs per request).
        self.progress = ctx.progress if self.marked else None
        self.skip_side_effects = ctx.dry_run and stage.side_effect
        self.idempotent = stage.sends_idempotency_key
        self.compensating = stage.side_effect and stage.compensate is not None
        self.reads_nothing = stage.format == "none"
        # A paginated fetch reads each page whole, whatever its format: its paginator
        # reads the page's records (and pages are small by nature). So does one whose
        # compensation reads the answer.
        self.streams = (
            not self.reads_nothing and not self.compensating and self.connector.streams(stage)
        )

    async def run(self, inbox: Inbox | None) -> None:
        if self.ctx.replay is not None:
            await self._replay(inbox)
        elif self.stage.inputs:
            await self._fan_out_over(inbox)
        else:
            items = ((item_key(i, v), v) for i, v in enumerate(self.stage.fan_out_items()))
            await self._fan_out(items)

    def _windowed(self, items: Iterator[Item]) -> Iterator[tuple[str, dict[str, Any], Window]]:
        """Each item with its incremental partition — and, for a windowed fetch, once per
        date window (``<item>@<window start>``), so workers share the windows too."""
        cursors = self.cursors
        for key, values in items:
            if cursors is None:
                yield key, values, None
                continue
            tracker = cursors.for_item(values)
            if isinstance(tracker, WindowTracker):
                for bounds, begin in tracker.windows:
                    yield f"{key}@{begin.isoformat()}", values, (bounds, tracker)
            else:
                yield key, values, (tracker.params(), tracker)

    # -- fan-out ----------------------------------------------------------------------------
    async def _fan_out(self, items: Iterator[Item]) -> None:
        """Workers share one iterator: taking the next item costs no scheduling."""
        planned = self._windowed(items)

        async def work() -> None:
            with self._working():
                for key, values, window in planned:
                    if self.ctx.stopped:  # this item and the rest are left for the next run
                        self.stats.stopped += 1 + sum(1 for _ in planned)
                        return
                    await self.item(key, values, window)
                    self._trackers.pop(key, None)
                    self.stats.done += 1

        async with anyio.create_task_group() as tg:
            for i in range(self.workers):
                tg.start_soon(work, name=f"{self.stage.name}:worker-{i}")

    async def _fan_out_over(self, inbox: Inbox | None) -> None:
        """One item per input record, fed to the workers through a bounded stream."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](self.workers)

        async def feed() -> None:
            async with send:
                async for _source, batch, _marks in batches(self.ctx, self.stage.name, inbox):
                    for record in batch:
                        await _streams.send(send, record)

        async def work(records: ObjectReceiveStream[dict[str, Any]]) -> None:
            async with records:
                with self._working():
                    async for record in _streams.drain(records):
                        if self.ctx.stopped:  # drained, so the feed ends; nothing is sent
                            self.stats.stopped += 1
                            continue
                        for key, values, window in self._windowed(
                            iter([(item_key(None, record), record)])
                        ):
                            await self.item(key, values, window)
                            self._trackers.pop(key, None)
                        self.stats.done += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(feed, name=f"{self.stage.name}:feed")
            async with receive:
                for i in range(self.workers):
                    tg.start_soon(work, receive.clone(), name=f"{self.stage.name}:worker-{i}")

    @contextmanager
    def _working(self) -> Iterator[None]:
        """A worker's lifetime, counted while its stage's items are acknowledged (a store
        lingers for more batches only while some such worker is not yet waiting)."""
        if not self.acked:
            yield
            return
        self.ctx.ack_workers += 1
        try:
            yield
        finally:
            self.ctx.ack_workers -= 1

    async def _replay(self, inbox: Inbox | None) -> None:
        """A replay sends exactly the dead-lettered items of this stage, nothing else."""
        async for _ in batches(self.ctx, self.stage.name, inbox):
            pass  # upstream stages replay their own items; what they send is not ours
        letters = (self.ctx.replay or {}).get(self.stage.name, [])
        await self._fan_out(iter([(str(d.item), dict(d.binding or {})) for d in letters]))

    # -- one item ---------------------------------------------------------------------------
    async def item(self, key: str, values: dict[str, Any], window: Window = None) -> None:
        """One fan-out item: skip it when an earlier attempt carried it, else build its
        first request and follow its chain (from where an earlier attempt stopped).
        ``window``: the incremental parameters it sends, and its partition's tracker."""
        progress = self.progress
        if progress is not None and progress.done(self.stage.name, key, self.sinks):
            return
        stage = self.stage
        if self.skip_side_effects:
            # A dry run changes nothing: a POST, PUT, PATCH or DELETE is not sent.
            self.stats.dry_run_skipped += 1
            if self.stats.dry_run_skipped == 1:
                self.ctx.event(
                    "dry_run_skipped",
                    f"{stage.method} requests of stage {stage.name!r} are not sent in a dry run",
                    stage=stage.name,
                )
            return
        params = self.ctx.params
        bound = {**values, "params": params} if params else values
        try:
            request = self.connector.build_request(stage, bound)
        except PipelineError as exc:
            self.stats.not_sent += 1
            self.ctx.event("request_not_built", exc.message, stage=stage.name)
            return
        if window is not None:
            since, tracker = window
            if since:
                request = request.with_params(**since)
            self._trackers[key] = tracker  # _send hands each page's records to it
        if self.idempotent:
            request = request.with_headers(**{"Idempotency-Key": self._idempotency(key)})
        carried = None
        if stage.carry:
            carried = {out: lookup(values, src) for out, src in stage.carry.items()}
        paginator = self.connector.paginator(stage)
        if paginator is None:
            if self.streams:  # NDJSON, CSV, XML: records as the body arrives (_body.py)
                await stream_item(self, request, key, values, carried)
                return
            page = await self._send(request, key, values, 1)
            if page is not None:
                await self._emit(page, carried, self._marks(key, 1, done=True))
            return
        resume = progress.resume_point(stage.name, key, self.sinks) if progress else None
        if resume is not None:
            paginator.restore(resume["paginator"])
            await self._chain(paginator, Request.from_json(resume["request"]), key, values,
                              carried, pages=int(resume["page"]))  # fmt: skip
        else:
            await self._chain(paginator, paginator.first(request), key, values, carried)

    async def _chain(
        self,
        paginator: Paginator,
        request: Request,
        key: str,
        values: dict[str, Any],
        carried: dict[str, Any] | None,
        *,
        pages: int = 0,
    ) -> None:
        pending: Request | None = request
        while pending is not None:
            page = await self._send(pending, key, values, pages + 1, paginator)
            if page is None:  # the failure is recorded; the item stays to be done
                # The pages the API said follow are lost work too: the run's ratio and its
                # counts say so (a broken chain of 10 pages at page 4 is not "1 of 4").
                self.stats.not_sent += max(0, paginator.unfetched() - 1)
                return
            pages += 1
            response, records = page
            if response.action == "ignore":  # a rule said so: the chain ends here, done
                await self._emit(page, carried, self._marks(key, pages, done=True))
                return
            try:
                following = paginator.next(pending, response, records)
            except ResponseError as exc:  # the page's body cannot say what comes next
                await self._emit(page, carried, ())
                self._bad_response(exc, response.url, key, values, pages)
                return
            rest = paginator.rest(following) if following is not None else None
            if rest is not None and following is not None:
                progress = self.progress
                carried_pages = (
                    progress.pages_done(self.stage.name, key, self.sinks) if progress else {}
                )
                if 1 not in carried_pages:
                    await self._emit(page, carried, self._page_marks(key, 1, len(records)))
                requests = [following, *rest]
                if await self._pages(paginator, requests, key, values, carried, carried_pages):
                    complete = self._complete(paginator, response.url, key, values, pages)
                    await self._emit_marked(
                        [], self._marks(key, pages + 1 + len(rest), done=complete)
                    )
                return
            if following is None:
                complete = self._complete(paginator, response.url, key, values, pages)
                await self._emit(page, carried, self._marks(key, pages, done=complete))
                return
            state = {
                "request": following.to_json(),
                "paginator": paginator.checkpoint(),
                "page": pages,
            }
            await self._emit(page, carried, self._marks(key, pages, done=False, resume=state))
            pending = following

    async def _pages(
        self,
        paginator: Paginator,
        requests: list[Request],
        key: str,
        values: dict[str, Any],
        carried: dict[str, Any] | None,
        carried_pages: dict[int, int],
    ) -> bool:
        """Pages known in advance, sent concurrently (the gateway's limiters bound them);
        False when any of them failed. Each page is marked on its own; the chain is
        marked done once all of them are through. ``carried_pages``: pages an earlier
        attempt carried (number → records), not sent again but counted."""
        for records in carried_pages.values():
            paginator.count(records)
        pages = iter(
            (number, request)
            for number, request in enumerate(requests, start=2)
            if number not in carried_pages
        )
        failed = False
        ended = False  # a page came back empty: the stated total was more than there is

        async def work() -> None:
            nonlocal failed, ended
            for number, request in pages:
                if ended:  # the pages after it would be empty too; the shortfall is reported
                    return
                page = await self._send(request, key, values, number, paginator)
                if page is None:
                    failed = True
                else:
                    held = len(page[1])
                    ended = ended or held == 0
                    paginator.count(held)
                    await self._emit(page, carried, self._page_marks(key, number, held))

        async with anyio.create_task_group() as tg:
            for i in range(min(len(requests), self.connector.config.concurrency)):
                tg.start_soon(work, name=f"{self.stage.name}:pages-{i}")
        return not failed

    def _complete(
        self, paginator: Paginator, url: str, key: str, values: dict[str, Any], pages: int
    ) -> bool:
        """True when the chain holds what the API said it has; else a recorded failure
        (never a silent ok), and the item is not done: a resume fetches it again."""
        problem = paginator.shortfall()
        if problem is None:
            return True
        self.stats.failed += 1
        url = self.ctx.gateway.redact(url)
        self.ctx.event("incomplete_pagination", f"{url}: {problem}", stage=self.stage.name, url=url)
        self._letter(key, values, pages, problem, None, None)
        return False

    # -- one request ------------------------------------------------------------------------
    async def _send(
        self,
        request: Request,
        key: str,
        values: dict[str, Any],
        page: int,
        paginator: Paginator | None = None,
    ) -> Page | None:
        """One logical request and its records; None when it failed (recorded).

        Its outcome — an answer of any status, or the failure that prevented one — goes to
        the fetch's response checks first. ``paginator`` vets a page before its records
        are read (a GraphQL error answer is a 200 whose records are not there).
        """
        response = await self._answer(request, key, values, page)
        if response is None:
            return None
        records: list[Record] = []
        if response.action == "ignore":
            self.stats.ignored += 1
            return response, records
        try:
            if paginator is not None:
                paginator.vet(response)
            if not self.reads_nothing:
                records = self.connector.records(self.stage, response)
            if self._trackers:
                tracker = self._trackers.get(key)
                if tracker is not None:
                    tracker.observe(records)
        except ResponseError as exc:
            self._bad_response(exc, response.url, key, values, page)
            return None
        if self.compensating:
            compensation = compensation_for(self.stage, self.ctx.params, values, response)
            await self.ctx.record_step(self.stage.name, f"{key}/{page}", compensation)
        return response, records

    async def _answer(
        self, request: Request, key: str, values: dict[str, Any], page: int
    ) -> Response | None:
        """The gateway's answer, seen by the fetch's response checks; None when the
        request failed (recorded)."""
        stats = self.stats
        if self.credential_failure is not None:
            stats.not_sent += 1  # the connector cannot authenticate: nothing goes out
            self._letter(key, values, page, self.credential_failure.reason, None, request)
            return None
        if self.ctx.stopped:
            stats.stopped += 1
            return None
        stats.requests += 1
        started = time.perf_counter()
        checks = self.response_checks
        try:
            response = await self.ctx.gateway.send(self.stage.connector, request, self.rules)
        except QuotaExhausted as exc:
            if not exc.sent:
                stats.requests -= 1  # it never went out
            stats.stopped += 1
            self._stop(exc)
            return None
        except RequestError as exc:
            if checks:
                self._observe(failure_data(exc, request, time.perf_counter() - started))
            self._failed(exc, key, values, page, request)
            return None
        if checks:  # building what a check reads costs a headers copy: only when read
            self._observe(response_data(response))
        return response

    async def _emit(self, page: Page, carried: dict[str, Any] | None, marks: Marks) -> None:
        records = page[1]
        if carried:
            for record in records:
                record.update(carried)
        self.stats.records_out += len(records)
        await self._emit_marked(records, marks)

    async def _emit_marked(self, records: list[Record], marks: Marks) -> None:
        """Send a batch on; for an acknowledged stage, return once its mark is committed
        by every end it reaches — so a crash never finds more than the workers in hand."""
        if not (self.acked and marks):
            await self.emit(records, marks)
            return
        committed = [self.ctx.await_ack(mark, len(self.sinks)) for mark in marks]
        await self.emit(records, marks)
        for event in committed:
            await event.wait()

    def _marks(
        self, key: str, pages: int, *, done: bool, resume: dict[str, Any] | None = None
    ) -> Marks:
        return (Mark(self.stage.name, key, pages, done, resume),) if self.marked else ()

    def _page_marks(self, key: str, number: int, records: int) -> Marks:
        """The mark of one page of a parallel set: done on its own, under its own name."""
        if not self.marked:
            return ()
        return (Mark(self.stage.name, page_item(key, number, records), number, True),)

    def _idempotency(self, key: str) -> str:
        """The same for every retry and every resume of this run's item, and only for it."""
        return f"podium-{self.ctx.run.id}-{self.stage.name}-{key}"

    def _observe(self, data: dict[str, Any]) -> None:
        for tally in self.response_checks:
            tally.observe(data)

    # -- failures ---------------------------------------------------------------------------
    def _failed(
        self, exc: RequestError, key: str, values: dict[str, Any], page: int, request: Request
    ) -> None:
        stage, stats = self.stage, self.stats
        if isinstance(exc, CredentialError):
            # Reported once, with its cause; every request it stops is counted as not sent.
            stats.requests -= 1
            stats.not_sent += 1
            if self.credential_failure is None:
                self.credential_failure = exc
                self.ctx.event("credential_failed", exc.message, stage=stage.name, **_detail(exc))
            self._letter(key, values, page, exc.reason, exc, request)
            return
        stats.failed += 1
        self.ctx.event("request_failed", exc.message, stage=stage.name, **_detail(exc))
        self._letter(key, values, page, exc.reason, exc, request)
        self._stop_if_asked(exc.message)

    def _bad_response(
        self, exc: ResponseError, url: str, key: str, values: dict[str, Any], page: int
    ) -> None:
        self.stats.failed += 1
        self.ctx.stats.connectors[self.stage.connector].failed += 1
        url = exc.url or self.ctx.gateway.redact(url)
        # The gateway's errors name the request already; a connector's name nothing.
        message = exc.message if exc.url else f"{url}: {exc.message}"
        self.ctx.event("bad_response", message, stage=self.stage.name, url=url, cause=exc.reason)
        self._letter(key, values, page, exc.reason, exc, exc.request)
        self._stop_if_asked(message)

    def _letter(
        self,
        key: str,
        values: dict[str, Any],
        page: int,
        cause: str,
        exc: RequestError | None,
        request: Request | None,
    ) -> None:
        self.ctx.dead_letter(
            DeadLetterRow(
                run_id=self.ctx.run.id,
                pipeline=self.ctx.pipeline.name,
                stage=self.stage.name,
                kind="request",
                item=key,
                page=page,
                binding=_jsonable(values),
                request=request.to_json() if request is not None else None,
                cause=cause,
                status=exc.status if exc is not None else None,
                attempts=exc.attempts if exc is not None else 0,
            )
        )

    def _stop(self, exc: QuotaExhausted) -> None:
        """The API's quota is used up: the run sends nothing more and ends partial; its
        incremental cursors stay where they were, so the next run fetches what this one
        could not."""
        if self.ctx.stopped is None:
            self.ctx.stopped = exc.message
            self.ctx.event("quota_exhausted", exc.message, stage=self.stage.name)

    def _stop_if_asked(self, message: str) -> None:
        """``on_failure = fail | compensate``: the first final failure ends the run."""
        policy = self.stage.failure_policy
        if policy == "continue":
            return
        self.ctx.failure_policy = policy
        raise StageError(f"stage {self.stage.name!r} failed (on_failure = {policy}): {message}")


def _detail(exc: RequestError) -> dict[str, Any]:
    """What an event keeps of a failed request: where, the cause, how the API answered.
    (Texts are redacted when the event is recorded.)"""
    detail: dict[str, Any] = {"url": exc.url, "status": exc.status, "cause": exc.reason}
    if exc.request is not None and exc.url is not None:
        detail["first"] = f"{exc.request.method} {exc.url}"
    if exc.response is not None and exc.response.body:
        detail["excerpt"] = exc.response.excerpt()
    return detail


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    import orjson

    out: dict[str, Any] = orjson.loads(orjson.dumps(values, default=str))
    return out
