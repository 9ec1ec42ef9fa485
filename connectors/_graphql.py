"""GraphQL's cursor connections (the Relay spec most GraphQL APIs follow): POST
``{query, variables}``, read ``pageInfo { hasNextPage endCursor }`` and send the cursor
back as ``variables.<variable>``.

The general ``cursor`` paginator with ``in = "body"`` can do the same; this one knows
the connection's shape, so it stops on ``hasNextPage: false`` instead of an empty page,
and a GraphQL error answer (status 200, ``{"errors": [...]}``, often with ``data:
null``) is a named bad response instead of a chain that quietly ends early.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

from pydantic import PrivateAttr, field_validator

from podium.pipeline import Expr, Fetch, ResponseError, truthy

from ._messages import Request, Response
from ._paginator import _Paginator
from ._placement import place


class GraphQLCursor(_Paginator):
    """``type = "graphql_cursor"``: ``page_info`` is the JMESPath to the connection's
    ``pageInfo`` object (``data.repository.issues.pageInfo``)."""

    type: Literal["graphql_cursor"]
    page_info: str
    variable: str = "after"
    has_next: str = "hasNextPage"
    end_cursor: str = "endCursor"
    # A connection answers its last page with hasNextPage false, not an empty page.
    stop_on_empty: bool = False

    _sent: set[str] = PrivateAttr(default_factory=set)

    @field_validator("page_info")
    @classmethod
    def _path(cls, value: str) -> str:
        Expr(value)
        return value

    @cached_property
    def _page_info(self) -> Expr:
        return Expr(self.page_info)

    def check_fetch(self, fetch: Fetch) -> str | None:
        body = fetch.body
        if fetch.method != "POST" or not isinstance(body, dict) or "query" not in body:
            return (
                'type = "graphql_cursor" needs method = "POST" and body = { query = "...", '
                "variables = { ... } }"
            )
        return None

    def vet(self, response: Response) -> None:
        # `{"errors": [...], "data": null}` is GraphQL's usual error answer: its records
        # path matches nothing, and that is not what went wrong. (A partial answer, data
        # and errors, keeps its records; ``advance`` then ends the chain on its errors.)
        body = response.json()
        if isinstance(body, dict) and body.get("data") is None:
            _raise_errors(body)

    def advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        body = response.json()
        if isinstance(body, dict):
            _raise_errors(body)
        info = self._page_info.search(body)
        if not isinstance(info, dict):
            raise ResponseError(f"page_info {self.page_info!r} matched no pageInfo object")
        if not truthy(info.get(self.has_next)):
            return None
        cursor = info.get(self.end_cursor)
        if cursor in (None, ""):
            raise ResponseError(f"pageInfo says {self.has_next} but has no {self.end_cursor}")
        key = str(cursor)
        if key in self._sent:
            raise ResponseError(f"cursor {key!r} came back again: the API would loop")
        self._sent.add(key)
        return place(request, "body", f"variables.{self.variable}", cursor, None)


def _raise_errors(body: dict[str, Any]) -> None:
    """A GraphQL answer's ``errors``, as one named bad response (the first message)."""
    errors = body.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) else errors
        message = first.get("message", first) if isinstance(first, dict) else first
        raise ResponseError(f"GraphQL answered with errors: {str(message)[:200]}")
