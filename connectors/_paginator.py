"""The paginator base class and what every paginator shares: the stop rules, where the
token goes (``in``), and totals read from the body or a header.

See ``_pagination`` for the built-in types and the guarantees every chain keeps.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from podium.pipeline import Expr, Fetch, ResponseError, truthy

from ._messages import Request, Response
from ._placement import Placement, hole, place

HEADER_PREFIX = "header:"


def count(source: str, value: Any) -> int:
    """A total read from a response by ``source``, as a non-negative whole number."""
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
            f"paginate expression {source!r} gave {value!r}, not a whole number of pages or records"
        )
    return number


class Total:
    """Where a response states a total: a JMESPath over the body, or ``header:NAME`` for
    a response header (json-server's ``X-Total-Count``, many REST APIs' ``X-Total``)."""

    __slots__ = ("_expr", "_header", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._header: str | None = None
        self._expr: Expr | None = None
        if source.startswith(HEADER_PREFIX):
            name = source.removeprefix(HEADER_PREFIX).strip()
            if not name:
                raise ValueError(f"{source!r} names no header: write 'header:X-Total-Count'")
            self._header = name
        else:
            self._expr = Expr(source)

    def read(self, response: Response) -> int | None:
        """The stated total, or None when this response does not state one."""
        if self._header is not None:
            value = _header(response.headers, self._header)
        else:
            assert self._expr is not None
            value = self._expr.search(response.json())
        return None if value is None else count(self.source, value)


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict (a test's transport) is not case-insensitive
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return None if value is None else str(value)


def total_field(value: str | None) -> str | None:
    """Validate a ``total`` / ``total_pages`` setting at load time."""
    if value is not None:
        Total(value)
    return value


class _Paginator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)

    max_pages: int | None = Field(default=None, ge=1)
    # A JMESPath that reads a "more pages follow" flag (e.g. has_more); false ends the chain.
    has_more: str | None = None
    stop_on_empty: bool = True
    # An expression over {body, headers, status, page, records}; truthy ends the chain
    # after this page (on purpose, like max_pages: no shortfall is reported).
    stop_when: str | None = None

    _pages: int = PrivateAttr(0)
    # Records received so far in this chain, and whether max_pages ended it on purpose.
    _received: int = PrivateAttr(0)
    _capped: bool = PrivateAttr(False)
    # A digest of the last page's body: an API that ignores the paging parameter (or a
    # misspelt one) answers the same page again and again, and a chain with no stated
    # total would follow it for ever.
    _last_body: str | None = PrivateAttr(None)

    @field_validator("has_more", "stop_when")
    @classmethod
    def _expression(cls, value: str | None) -> str | None:
        if value is not None:
            Expr(value)
        return value

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

    def check_fetch(self, fetch: Fetch) -> str | None:
        """At load time: what in the fetch stage this paginator cannot work with, or None."""
        return None

    @cached_property
    def _has_more(self) -> Expr | None:
        return Expr(self.has_more) if self.has_more is not None else None

    @cached_property
    def _stop_when(self) -> Expr | None:
        return Expr(self.stop_when) if self.stop_when is not None else None

    def first(self, request: Request) -> Request:
        return request

    def vet(self, response: Response) -> None:
        """Before a page's records are read: raise ``ResponseError`` for an answer that is
        an error in disguise (a 200 carrying an error document), so the error is what the
        run reports rather than the records it lacks."""

    def next(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        self._pages += 1
        self._received += len(records)
        if records:
            self._refuse_a_repeated_page(response)
        if self.max_pages is not None and self._pages >= self.max_pages:
            self._capped = True
            return None
        if self.stop_on_empty and not records:
            return None
        if self._has_more is not None and not truthy(self._has_more.search(response.json())):
            return None
        stop = self._stop_when
        if stop is not None and truthy(stop.search(self._stop_context(response, records))):
            self._capped = True
            return None
        return self.advance(request, response, records)

    def _refuse_a_repeated_page(self, response: Response) -> None:
        digest = hashlib.blake2b(response.body, digest_size=16).hexdigest()
        if digest == self._last_body:
            raise ResponseError(
                f"page {self._pages} answered exactly what page {self._pages - 1} did: the "
                "API does not seem to read the paging parameter (is its name right?)"
            )
        self._last_body = digest

    def _stop_context(self, response: Response, records: list[Any]) -> dict[str, Any]:
        """What ``stop_when`` reads: header names in lower case (HTTP's are case-blind)."""
        return {
            "body": response.body_value(),
            "headers": {k.lower(): v for k, v in response.headers.items()},
            "status": response.status,
            "page": self._pages,
            "records": records,
        }

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

    def unfetched(self) -> int:
        """Once the chain broke on a failed page: how many pages the API stated that the
        chain did not fetch, the failed one included (0 when no total says)."""
        return 0

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


class _Placed(_Paginator):
    """A paginator that sends a token of its own (a page number, an offset, a cursor),
    placed by ``in``."""

    in_: Placement = Field(default="query", alias="in")

    # The first request's URL with its ``{name}`` hole, for path placement.
    _url: str | None = PrivateAttr(None)

    def token_name(self) -> str:
        """The query parameter, header, body path or path hole the token goes to."""
        raise NotImplementedError

    def check_fetch(self, fetch: Fetch) -> str | None:
        name = self.token_name()
        if self.in_ == "path" and hole(name) not in fetch.path:
            return (
                f'in = "path" puts the token at {hole(name)} in the fetch\'s path, and '
                f"path {fetch.path!r} has none"
            )
        if self.in_ == "body" and fetch.body is not None and not isinstance(fetch.body, dict):
            return 'in = "body" needs a JSON object body (a table), or none'
        return None

    @model_validator(mode="after")
    def _stop_one_by_one(self) -> Self:
        if getattr(self, "parallel", False) and self.stop_when is not None:
            raise ValueError("stop_when reads pages one by one: it cannot go with parallel = true")
        return self

    def start_chain(self, request: Request) -> None:
        if self.in_ == "path":
            self._url = request.url

    def put(self, request: Request, value: Any) -> Request:
        return place(request, self.in_, self.token_name(), value, self._url)

    def put_size(self, request: Request, name: str, value: Any) -> Request:
        """A page size goes where the token goes; beside a path token, into the query."""
        where: Placement = "query" if self.in_ == "path" else self.in_
        return place(request, where, name, value, None)
