"""The ``ndjson`` connector: newline-delimited JSON, paged by a token in a response header.

Two things differ from the built-in ``http`` connector, and the class overrides exactly
those: how a response becomes records (one JSON object per line, not one JSON document),
and how the next page is found (a header, not the body). Everything else — the session,
auth, limits, retries, incremental cursors — is podium's.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from podium import (
    Connector,
    ConnectorConfig,
    Fetch,
    Paginator,
    Record,
    Request,
    Response,
    ResponseError,
)

__all__ = ["HeaderToken", "NdjsonConfig", "NdjsonConnector"]


class NdjsonConfig(ConnectorConfig):
    page_token_header: str = "X-Next-Page-Token"
    page_token_param: str = "page_token"


class HeaderToken(Paginator):
    """The next page's token arrives in a response header and goes back as a parameter."""

    type: Literal["header_token"] = "header_token"
    header: str
    param: str

    def advance(self, request: Request, response: Response, records: list[Any]) -> Request | None:
        token = response.headers.get(self.header)
        return request.with_params(**{self.param: token}) if token else None


class NdjsonConnector(Connector):
    kind = "ndjson"
    Config = NdjsonConfig
    config: NdjsonConfig

    def paginator(self, fetch: Fetch) -> Paginator | None:
        # A fetch's own `paginate` table still wins; otherwise follow the header.
        if fetch.paginate is not None:
            return super().paginator(fetch)
        return HeaderToken(header=self.config.page_token_header, param=self.config.page_token_param)

    def records(self, fetch: Fetch, response: Response) -> list[Record]:
        records: list[Record] = []
        for number, line in enumerate(response.body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ResponseError(f"line {number} is not JSON ({exc.msg})") from None
            if not isinstance(value, dict):
                raise ResponseError(f"line {number} is not a JSON object")
            records.append(value)
        return records
