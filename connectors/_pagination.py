"""Paginators: small state machines that turn one logical fetch into a chain of requests.

A paginator never does I/O (the dlt model): ``first`` shapes the first request and
``next`` reads the last response and its records and returns the following request, or
None when the chain ends. One paginator instance serves one chain.

Page-number and offset paginators with ``parallel = true`` know every remaining page
once the first response states the total: ``rest`` lists those requests and the
orchestrator sends them concurrently, within the connector's limits. Cursor and next-URL
chains cannot be known ahead, so they stay sequential.

Configured as ``paginate = { type = "...", ... }`` on a fetch stage. Page numbers,
offsets and cursors go where ``in`` says (query, header, JSON body, path; see
``_placement``); totals come from the body or a header (``header:X-Total-Count``); every
paginator takes ``stop_when``, an expression over the page (``_paginator``). GraphQL
connections have their own paginator (``_graphql``).

Paginators that follow links the API sends (``next_url``, ``link_header``) only follow
them to the origin (scheme, host and port) of the response that carried them: the
session's headers, among them its Authorization or API key, go with every request, so a
link to another host would hand that host the credential. ``allow_other_hosts = true``
lifts the rule for an API that really pages across hosts.

Totals read from a response (``total_pages``, ``total``) must be whole numbers (a JSON
number or a numeric string); anything else is a ``ResponseError`` naming the expression
and the value, recorded as a bad response like any other unusable body.

Every chain either yields exactly the server's records or ends with a named error:

- offsets advance by the records a page actually held, never by the ``limit`` asked for
  (servers cap page sizes); without a total, only an empty page ends an offset chain;
- a record total is turned into pages by the page size the server really used (the
  first page's length, when shorter than asked), and a chain that ends short of a stated
  total reports the shortfall (``shortfall``), which the engine records as a failure;
- a cursor or a next link seen before in the same chain is an error (the API would loop).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cached_property
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field, PrivateAttr, field_validator, model_validator

from podium.pipeline import Expr, ResponseError

from ._graphql import GraphQLCursor
from ._messages import Request, Response, origin
from ._paginator import Total, _Paginator, _Placed, total_field

Paginator = _Paginator
"""The public name of the paginator base class, for plugins."""


class SinglePage(_Paginator):
    type: Literal["none"] = "none"

    def advance(self, request: Request, response: Response, records: list[Any]) -> None:
        return None


class _FollowsLinks(_Paginator):
    """A paginator whose next request is a URL the API sent.

    The next request is the same request at the new URL: same method, same headers and,
    unless ``keep_body = false``, the same body — a POST search that pages by next links
    must send its criteria again, or the next page would answer another question. The
    first request's query parameters are dropped: the link carries its own."""

    # Follow next links to another origin than the response's (they would carry the
    # session's credentials there); off unless the paginate table opts in.
    allow_other_hosts: bool = False
    keep_body: bool = True

    _seen: set[str] = PrivateAttr(default_factory=set)

    def follow(self, request: Request, response: Response, link: str) -> Request:
        url = urljoin(response.url, link)
        self._seen.add(response.url)
        if url in self._seen:
            raise ResponseError(f"next page link {link!r} leads back to a page already fetched")
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise ResponseError(f"next page link {link!r} is not an http(s) URL")
        if not self.allow_other_hosts:
            here, there = origin(response.url), origin(url)
            if here != there:
                raise ResponseError(
                    f"next page link goes to {there}, another origin than the response's "
                    f"{here}; set allow_other_hosts = true in paginate to follow it"
                )
        if self.keep_body:
            return replace(request, url=url, params={})
        return Request(request.method, url, {}, request.headers)


class NextUrl(_FollowsLinks):
    """The body carries the next page's URL (absolute or relative) at ``path``."""

    type: Literal["next_url"]
    path: str

    @cached_property
    def _path(self) -> Expr:
        return Expr(self.path)

    def advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        url = self._path.search(response.json())
        if not url:
            return None
        return self.follow(request, response, str(url))


class LinkHeader(_FollowsLinks):
    """RFC 8288 ``Link: <...>; rel="next"``, as GitHub and many others send it (parsed by
    the transport into ``response.links``)."""

    type: Literal["link_header"]

    def advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        link = response.links.get("next")
        return None if link is None else self.follow(request, response, link)


class PageNumber(_Placed):
    """``?page=N``; stops on an empty page, at the stated number of pages (``total_pages``,
    or ``total`` records divided by the page size the server really used), or at
    ``max_pages``. Either total may be ``header:NAME``."""

    type: Literal["page_number"]
    param: str = "page"
    start: int = 1
    total_pages: str | None = None
    total: str | None = None
    # The size to ask for (with page_size_param); the page size used to count pages from a
    # record total is the first page's real length.
    page_size: int | None = Field(default=None, ge=1)
    page_size_param: str | None = None
    parallel: bool = False

    _page: int = PrivateAttr(0)
    _total_pages: int | None = PrivateAttr(None)
    _total_records: int | None = PrivateAttr(None)
    _size: int | None = PrivateAttr(None)
    _ended_empty: bool = PrivateAttr(False)

    _totals = field_validator("total", "total_pages")(total_field)

    @model_validator(mode="after")
    def _check(self) -> PageNumber:
        if self.page_size_param is not None and self.page_size is None:
            raise ValueError("'page_size_param' needs 'page_size'")
        if self.total is not None and self.total_pages is not None:
            raise ValueError("give 'total_pages' or 'total' (records), not both")
        return self

    def token_name(self) -> str:
        return self.param

    @cached_property
    def _total_pages_source(self) -> Total | None:
        return Total(self.total_pages) if self.total_pages is not None else None

    @cached_property
    def _total_source(self) -> Total | None:
        return Total(self.total) if self.total is not None else None

    def first(self, request: Request) -> Request:
        self.start_chain(request)
        self._page = self.start
        if self.page_size_param is not None:
            request = self.put_size(request, self.page_size_param, self.page_size)
        return self.put(request, self.start)

    def next(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        if not records and self._pages_known() is not None:
            self._ended_empty = True
        return super().next(request, response, records)

    def _read_total(self, response: Response, records: list[Any]) -> None:
        # The total may be stated on the first page only: a page without it keeps the last.
        if self._size is None and records:
            self._size = (
                len(records) if self.page_size is None else min(len(records), self.page_size)
            )
        if self._total_pages_source is not None:
            total = self._total_pages_source.read(response)
            if total is not None:
                self._total_pages = total
        elif self._total_source is not None:
            total = self._total_source.read(response)
            if total is not None:
                self._total_records = total

    def _pages_known(self) -> int | None:
        if self._total_pages is not None:
            return self._total_pages
        if self._total_records is not None and self._size:
            return math.ceil(self._total_records / self._size)
        return None

    def advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        self._read_total(response, records)
        self._page += 1
        pages = self._pages_known()
        if pages is not None and self._page - self.start >= pages:
            return None
        return self.put(request, self._page)

    def rest(self, following: Request) -> list[Request] | None:
        pages = self._pages_known()
        if not self.parallel or pages is None or self._pages != 1:
            return None
        last = self.start + self._page_budget(pages)
        return [self.put(following, p) for p in range(self._page + 1, last)]

    def unfetched(self) -> int:
        pages = self._pages_known()
        return 0 if pages is None else max(0, pages - self._pages)

    def shortfall(self) -> str | None:
        if self._total_records is not None:
            return self._short_of(self._total_records, self.total)
        pages = self._pages_known()
        if self._ended_empty and pages is not None and not self._capped:
            return f"page {self.start + self._pages - 1} was empty, before the {pages} pages stated"
        return None


class Offset(_Placed):
    """``?offset=N&limit=M``. The offset advances by the records each page actually held —
    a server that caps its pages below ``limit`` is followed, not skipped over. The chain
    ends on an empty page, at ``total`` when stated (a JMESPath or ``header:NAME``), or on
    a short page only with ``stop_on_short = true`` (saves one request, for APIs that
    never cap a page)."""

    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = Field(default=100, ge=1)
    total: str | None = None
    parallel: bool = False
    stop_on_short: bool = False

    _offset: int = PrivateAttr(0)
    _total: int | None = PrivateAttr(None)

    _totals = field_validator("total")(total_field)

    def token_name(self) -> str:
        return self.offset_param

    @cached_property
    def _total_source(self) -> Total | None:
        return Total(self.total) if self.total is not None else None

    def first(self, request: Request) -> Request:
        self.start_chain(request)
        return self.put(self.put_size(request, self.limit_param, self.limit), 0)

    def advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        if self._total_source is not None:
            total = self._total_source.read(response)
            if total is not None:
                self._total = total
        received = len(records)
        self._offset += received
        if received == 0:  # nothing to advance by: the end, whatever stop_on_empty says
            return None
        if self._total is not None and self._offset >= self._total:
            return None
        if self._total is None and self.stop_on_short and received < self.limit:
            return None
        return self.put(request, self._offset)

    def rest(self, following: Request) -> list[Request] | None:
        if not self.parallel or self._total is None or self._pages != 1:
            return None
        step = self._offset  # what the first page really held: the server's page size
        pages = self._page_budget(math.ceil(self._total / step))
        offsets = range(self._offset + step, min(self._total, pages * step), step)
        return [self.put(following, o) for o in offsets]

    def unfetched(self) -> int:
        if self._total is None or self._pages == 0:
            return 0
        # Pages of the size the first page really had (the server's, when it caps them).
        size = max(1, self._received // self._pages) if self._received else self.limit
        return max(0, math.ceil((self._total - self._received) / size))

    def shortfall(self) -> str | None:
        return self._short_of(self._total, self.total)


class Cursor(_Placed):
    """An opaque cursor read from the body at ``path`` and sent back as ``param``; a cursor
    the chain has already sent is an error (the API would serve the same pages forever)."""

    type: Literal["cursor"]
    path: str
    param: str = "cursor"

    _sent: set[str] = PrivateAttr(default_factory=set)

    @cached_property
    def _path(self) -> Expr:
        return Expr(self.path)

    @model_validator(mode="after")
    def _compile(self) -> Cursor:
        _ = self._path
        return self

    def token_name(self) -> str:
        return self.param

    def first(self, request: Request) -> Request:
        self.start_chain(request)
        # The first page has no cursor; only a path hole must be filled (left empty).
        return self.put(request, "") if self.in_ == "path" else request

    def advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        cursor = self._path.search(response.json())
        if cursor in (None, ""):
            return None
        key = str(cursor)
        if key in self._sent:
            raise ResponseError(f"cursor {key!r} came back again: the API would loop")
        self._sent.add(key)
        return self.put(request, cursor)


PaginatorConfig = Annotated[
    SinglePage | NextUrl | LinkHeader | PageNumber | Offset | Cursor | GraphQLCursor,
    Field(discriminator="type"),
]
PAGINATOR_TYPES = (
    "none",
    "next_url",
    "link_header",
    "page_number",
    "offset",
    "cursor",
    "graphql_cursor",
)
