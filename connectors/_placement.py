"""Where a paginator puts its token: the query, a header, the JSON body or the URL path.

Airbyte's declarative paginators inject the next token into any of the four; dlt users
ask for the cursor inside a POST body (dlt-hub/dlt#2360, GraphQL's ``variables.after``).
One small value object does the placing for every paginator, so each paginator only
says *what* the next token is.

- ``query``: ``?name=value`` (the default);
- ``header``: ``name: value``;
- ``body``: a dotted path into the JSON body (``variables.after``, ``cursor``); the
  objects along the path are copied, never changed in place (the first request's body
  is shared by every chain of the stage);
- ``path``: the fetch's ``path`` holds ``{name}`` where the token goes
  (``/items/page/{page}``); the URL with the hole is kept as chain state, so every page
  fills the same hole. A cursor chain's first page has no cursor: the hole is left empty.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal
from urllib.parse import quote

from podium.pipeline import ResponseError

from ._messages import Request

Placement = Literal["query", "header", "body", "path"]
PLACEMENTS: tuple[str, ...] = ("query", "header", "body", "path")


def hole(name: str) -> str:
    return "{" + name + "}"


def place(request: Request, where: Placement, name: str, value: Any, url: str | None) -> Request:
    """``request`` with ``value`` put ``where``, under ``name``. ``url`` is the URL with
    the ``{name}`` hole (chain state) for path placement."""
    if where == "query":
        return request.with_params(**{name: value})
    if where == "header":
        return request.with_headers(**{name: "" if value is None else str(value)})
    if where == "body":
        return replace(request, json=_set_path(request.json, name.split("."), value))
    assert url is not None, "path placement keeps the URL with its hole"
    text = "" if value is None else str(value)
    return replace(request, url=url.replace(hole(name), quote(text, safe="")))


def _set_path(body: Any, keys: list[str], value: Any) -> Any:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ResponseError(
            f"cannot put the page token at {'.'.join(keys)!r}: the request body is "
            f"{type(body).__name__}, not an object"
        )
    head, *tail = keys
    out = dict(body)
    out[head] = _set_path(body.get(head), tail, value) if tail else value
    return out
