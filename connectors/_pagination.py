"""Paginators: small state machines that turn one logical fetch into a chain of requests.

A paginator never does I/O (the dlt model): ``first`` shapes the first request and
``next`` reads the last response and its records and returns the following request, or
None when the chain ends. One paginator instance serves one chain.

Configured as ``paginate = { type = "...", ... }`` on a fetch stage.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urljoin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from pipeline import Expr, truthy

from ._messages import Request, Response

_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*?\brel="?next"?', re.IGNORECASE)


class _Paginator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)

    max_pages: int | None = Field(default=None, ge=1)
    # A JMESPath that reads a "more pages follow" flag (e.g. has_more); false ends the chain.
    has_more: str | None = None
    stop_on_empty: bool = True

    _pages: int = PrivateAttr(0)

    def first(self, request: Request) -> Request:
        return request

    def next(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        self._pages += 1
        if self.max_pages is not None and self._pages >= self.max_pages:
            return None
        if self.stop_on_empty and not records:
            return None
        if self.has_more is not None and not truthy(Expr(self.has_more).search(response.json())):
            return None
        return self._advance(request, response, records)

    def _advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        raise NotImplementedError


class SinglePage(_Paginator):
    type: Literal["none"] = "none"

    def _advance(self, request: Request, response: Response, records: list[Any]) -> None:
        return None


class NextUrl(_Paginator):
    """The body carries the next page's URL (absolute or relative) at ``path``."""

    type: Literal["next_url"]
    path: str

    def _advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        url = Expr(self.path).search(response.json())
        if not url:
            return None
        # The next URL carries its own query string; the first request's params would clash.
        return Request(request.method, urljoin(response.url, str(url)), {}, request.headers)


class LinkHeader(_Paginator):
    """RFC 8288 ``Link: <...>; rel="next"``, as GitHub and many others send it."""

    type: Literal["link_header"]

    def _advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        match = _LINK_NEXT.search(response.headers.get("Link", ""))
        if match is None:
            return None
        return Request(request.method, urljoin(response.url, match.group(1)), {}, request.headers)


class PageNumber(_Paginator):
    """``?page=N``; stops on an empty page, at ``total_pages`` (read from any page), or max."""

    type: Literal["page_number"]
    param: str = "page"
    start: int = 1
    total_pages: str | None = None

    _page: int = PrivateAttr(0)
    _total: int | None = PrivateAttr(None)

    def first(self, request: Request) -> Request:
        self._page = self.start
        return request.with_params(**{self.param: self.start})

    def _advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        if self.total_pages is not None:
            total = Expr(self.total_pages).search(response.json())
            if total is not None:
                self._total = int(total)
        self._page += 1
        if self._total is not None and self._page - self.start >= self._total:
            return None
        return request.with_params(**{self.param: self._page})


class Offset(_Paginator):
    """``?offset=N&limit=M``; stops on a short or empty page, or at ``total`` when given."""

    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = Field(default=100, ge=1)
    total: str | None = None

    _offset: int = PrivateAttr(0)
    _total: int | None = PrivateAttr(None)

    def first(self, request: Request) -> Request:
        return request.with_params(**{self.offset_param: 0, self.limit_param: self.limit})

    def _advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        if self.total is not None:
            total = Expr(self.total).search(response.json())
            if total is not None:
                self._total = int(total)
        self._offset += self.limit
        if self._total is not None and self._offset >= self._total:
            return None
        if self._total is None and len(records) < self.limit:
            return None
        return request.with_params(**{self.offset_param: self._offset})


class Cursor(_Paginator):
    """An opaque cursor read from the body at ``path`` and sent back as ``param``."""

    type: Literal["cursor"]
    path: str
    param: str = "cursor"

    @model_validator(mode="after")
    def _compile(self) -> Cursor:
        Expr(self.path)
        return self

    def _advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        cursor = Expr(self.path).search(response.json())
        if cursor in (None, ""):
            return None
        return request.with_params(**{self.param: cursor})


PaginatorConfig = Annotated[
    SinglePage | NextUrl | LinkHeader | PageNumber | Offset | Cursor,
    Field(discriminator="type"),
]
PAGINATOR_TYPES = ("none", "next_url", "link_header", "page_number", "offset", "cursor")
