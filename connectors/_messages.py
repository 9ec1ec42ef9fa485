"""Requests and responses as plain data: what connectors describe and parse.

Connectors never touch a socket. They build ``Request`` objects and read ``Response``
objects; the orchestrator turns one into the other over its own aiohttp sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from pipeline import ResponseError


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    params: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    # A form-encoded body (OAuth2 token requests, login forms); ``json`` and ``form`` exclude
    # each other.
    form: Mapping[str, str] | None = None

    def with_params(self, **params: Any) -> Request:
        return replace(self, params={**self.params, **params})

    def with_headers(self, **headers: str) -> Request:
        return replace(self, headers={**self.headers, **headers})


_UNREAD = object()


class Response:
    """A finished response with its whole body; ``json()`` decodes once, on first use."""

    __slots__ = ("_json", "body", "elapsed", "headers", "request", "status", "url")

    def __init__(
        self,
        request: Request,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        url: str,
        elapsed: float,
    ) -> None:
        self.request = request
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url
        self.elapsed = elapsed
        self._json: Any = _UNREAD

    def json(self) -> Any:
        if self._json is _UNREAD:
            try:
                self._json = orjson.loads(self.body)
            except orjson.JSONDecodeError as exc:
                snippet = self.body[:60].decode("utf-8", "replace")
                raise ResponseError(
                    f"response is not JSON ({exc.msg}); it starts with {snippet!r}"
                ) from None
        return self._json

    def as_check_data(self) -> dict[str, Any]:
        """What a response check's expression sees."""
        try:
            body = self.json()
        except ResponseError:
            body = None
        return {
            "status": self.status,
            "url": self.url,
            "elapsed_ms": round(self.elapsed * 1000, 3),
            "headers": dict(self.headers),
            "body": body,
        }
