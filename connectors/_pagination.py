"""Paginators: small state machines that turn one logical fetch into a chain of requests.

A paginator never does I/O (the dlt model): ``first`` shapes the first request and
``next`` reads the last response and its records and returns the following request, or
None when the chain ends. One paginator instance serves one chain.

Page-number and offset paginators with ``parallel = true`` know every remaining page
once the first response states the total: ``rest`` lists those requests and the
orchestrator sends them concurrently, within the connector's limits. Cursor and next-URL
chains cannot be known ahead, so they stay sequential.

Configured as ``paginate = { type = "...", ... }`` on a fetch stage.

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
from functools import cached_property
from typing import Annotated, Any, Literal, Self
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from podium.pipeline import Expr, ResponseError, truthy

from ._messages import Request, Response, origin


def _expr(source: str | None) -> Expr | None:
    return Expr(source) if source is not None else None


def _count(expression: str, value: Any) -> int:
    """A total read from a response by ``expression``, as a non-negative whole number."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ResponseError(
            f"paginate expression {expression!r} gave {value!r}, not a whole number of "
            "pages or records"
        )
    return number


class _Paginator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)

    max_pages: int | None = Field(default=None, ge=1)
    # A JMESPath that reads a "more pages follow" flag (e.g. has_more); false ends the chain.
    has_more: str | None = None
    stop_on_empty: bool = True

    _pages: int = PrivateAttr(0)
    # Records received so far in this chain, and whether max_pages ended it on purpose.
    _received: int = PrivateAttr(0)
    _capped: bool = PrivateAttr(False)

    def fresh(self) -> Self:
        """A copy with the chain state reset: one validated prototype serves every chain
        of a stage (compiled expressions are shared, state is not)."""
        copy = self.model_copy()
        for name, private in self.__private_attributes__.items():
            setattr(copy, name, private.get_default(call_default_factory=True))
        return copy

    def checkpoint(self) -> dict[str, Any]:
        """The chain's state as JSON (its private attributes), for a resumed run to go on
        from. A plugin's paginator needs nothing more if its state is JSON-able."""
        out: dict[str, Any] = {}
        for name in self.__private_attributes__:
            value = getattr(self, name)
            out[name] = sorted(value, key=str) if isinstance(value, set) else value
        return out

    def restore(self, state: dict[str, Any]) -> None:
        """Take up a chain where ``checkpoint`` left it."""
        for name, private in self.__private_attributes__.items():
            if name in state:
                default = private.get_default(call_default_factory=True)
                value = state[name]
                setattr(self, name, set(value) if isinstance(default, set) else value)

    @cached_property
    def _has_more(self) -> Expr | None:
        return Expr(self.has_more) if self.has_more is not None else None

    def first(self, request: Request) -> Request:
        return request

    def next(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        self._pages += 1
        self._received += len(records)
        if self.max_pages is not None and self._pages >= self.max_pages:
            self._capped = True
            return None
        if self.stop_on_empty and not records:
            return None
        if self._has_more is not None and not truthy(self._has_more.search(response.json())):
            return None
        return self.advance(request, response, records)

    def advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        """The next page's request, or None; the stop rules above have already passed.

        A plugin's own paginator subclasses ``Paginator`` and overrides this (and
        ``first`` when the first request needs shaping)."""
        raise NotImplementedError

    def rest(self, following: Request) -> list[Request] | None:
        """After the first page, with ``following`` the second page's request: the requests
        for every page after it, when they can all be known now; None to go page by page.
        The engine reports each of those pages' record counts with ``count``."""
        return None

    def count(self, records: int) -> None:
        """Records received on a page fetched from ``rest`` (concurrently)."""
        self._received += records

    def shortfall(self) -> str | None:
        """Once the chain is over: why it holds fewer records than the API stated, or None.
        Paginators that know no total have nothing to compare with."""
        return None

    def _page_budget(self, total_pages: int) -> int:
        if self.max_pages is not None and total_pages > self.max_pages:
            self._capped = True
            return self.max_pages
        return total_pages

    def _short_of(self, total: int | None, source: str | None) -> str | None:
        if total is None or self._capped or self._received >= total:
            return None
        return (
            f"the chain ended after {self._received} of the {total} records its total "
            f"({source!r}) stated"
        )


Paginator = _Paginator
"""The public name of the paginator base class, for plugins."""


class SinglePage(_Paginator):
    type: Literal["none"] = "none"

    def advance(self, request: Request, response: Response, records: list[Any]) -> None:
        return None


class _FollowsLinks(_Paginator):
    """A paginator whose next request is a URL the API sent."""

    # Follow next links to another origin than the response's (they would carry the
    # session's credentials there); off unless the paginate table opts in.
    allow_other_hosts: bool = False

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
        # The next URL carries its own query string; the first request's params would clash.
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


class PageNumber(_Paginator):
    """``?page=N``; stops on an empty page, at the stated number of pages (``total_pages``,
    or ``total`` records divided by the page size the server really used), or at
    ``max_pages``."""

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

    @model_validator(mode="after")
    def _check(self) -> PageNumber:
        if self.page_size_param is not None and self.page_size is None:
            raise ValueError("'page_size_param' needs 'page_size'")
        if self.total is not None and self.total_pages is not None:
            raise ValueError("give 'total_pages' or 'total' (records), not both")
        return self

    @cached_property
    def _total_pages_expr(self) -> Expr | None:
        return _expr(self.total_pages)

    @cached_property
    def _total_expr(self) -> Expr | None:
        return _expr(self.total)

    def first(self, request: Request) -> Request:
        self._page = self.start
        if self.page_size_param is not None:
            request = request.with_params(**{self.page_size_param: self.page_size})
        return request.with_params(**{self.param: self.start})

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
        if self._total_pages_expr is not None:
            total = self._total_pages_expr.search(response.json())
            if total is not None:
                self._total_pages = _count(self._total_pages_expr.source, total)
        elif self._total_expr is not None:
            total = self._total_expr.search(response.json())
            if total is not None:
                self._total_records = _count(self._total_expr.source, total)

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
        return request.with_params(**{self.param: self._page})

    def rest(self, following: Request) -> list[Request] | None:
        pages = self._pages_known()
        if not self.parallel or pages is None or self._pages != 1:
            return None
        last = self.start + self._page_budget(pages)
        return [following.with_params(**{self.param: p}) for p in range(self._page + 1, last)]

    def shortfall(self) -> str | None:
        if self._total_records is not None:
            return self._short_of(self._total_records, self.total)
        pages = self._pages_known()
        if self._ended_empty and pages is not None and not self._capped:
            return f"page {self.start + self._pages - 1} was empty, before the {pages} pages stated"
        return None


class Offset(_Paginator):
    """``?offset=N&limit=M``. The offset advances by the records each page actually held —
    a server that caps its pages below ``limit`` is followed, not skipped over. The chain
    ends on an empty page, at ``total`` when stated, or on a short page only with
    ``stop_on_short = true`` (saves one request, for APIs that never cap a page)."""

    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = Field(default=100, ge=1)
    total: str | None = None
    parallel: bool = False
    stop_on_short: bool = False

    _offset: int = PrivateAttr(0)
    _total: int | None = PrivateAttr(None)

    @cached_property
    def _total_expr(self) -> Expr | None:
        return _expr(self.total)

    def first(self, request: Request) -> Request:
        return request.with_params(**{self.offset_param: 0, self.limit_param: self.limit})

    def advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        if self._total_expr is not None:
            total = self._total_expr.search(response.json())
            if total is not None:
                self._total = _count(self._total_expr.source, total)
        received = len(records)
        self._offset += received
        if received == 0:  # nothing to advance by: the end, whatever stop_on_empty says
            return None
        if self._total is not None and self._offset >= self._total:
            return None
        if self._total is None and self.stop_on_short and received < self.limit:
            return None
        return request.with_params(**{self.offset_param: self._offset})

    def rest(self, following: Request) -> list[Request] | None:
        if not self.parallel or self._total is None or self._pages != 1:
            return None
        step = self._offset  # what the first page really held: the server's page size
        pages = self._page_budget(math.ceil(self._total / step))
        offsets = range(self._offset + step, min(self._total, pages * step), step)
        return [following.with_params(**{self.offset_param: o}) for o in offsets]

    def shortfall(self) -> str | None:
        return self._short_of(self._total, self.total)


class Cursor(_Paginator):
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

    def advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        cursor = self._path.search(response.json())
        if cursor in (None, ""):
            return None
        key = str(cursor)
        if key in self._sent:
            raise ResponseError(f"cursor {key!r} came back again: the API would loop")
        self._sent.add(key)
        return request.with_params(**{self.param: cursor})


PaginatorConfig = Annotated[
    SinglePage | NextUrl | LinkHeader | PageNumber | Offset | Cursor,
    Field(discriminator="type"),
]
PAGINATOR_TYPES = ("none", "next_url", "link_header", "page_number", "offset", "cursor")
