"""Authentication as request flows, the way httpx models it.

An auth's ``flow`` is a generator: it yields the request to send and receives the
response, so schemes that need a round trip (a token fetch, a refresh on 401) stay pure
descriptions while the orchestrator does the sending.
"""

from __future__ import annotations

import base64
from collections.abc import Generator
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ._messages import Request, Response

AuthFlow = Generator[Request, Response, None]


class _AuthBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def session_headers(self) -> dict[str, str]:
        """Headers set once on the connector's session."""
        return {}

    def flow(self, request: Request) -> AuthFlow:
        yield request

    def secrets(self) -> list[str]:
        """Values that must never appear in logs, errors or the database."""
        return [v.get_secret_value() for v in self.__dict__.values() if isinstance(v, SecretStr)]


class BearerAuth(_AuthBase):
    type: Literal["bearer"]
    token: SecretStr

    def session_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.get_secret_value()}"}

    def secrets(self) -> list[str]:
        token = self.token.get_secret_value()
        return [token, f"Bearer {token}"]


class BasicAuth(_AuthBase):
    type: Literal["basic"]
    username: str
    password: SecretStr

    def _encoded(self) -> str:
        raw = f"{self.username}:{self.password.get_secret_value()}".encode()
        return base64.b64encode(raw).decode("ascii")

    def session_headers(self) -> dict[str, str]:
        return {"Authorization": f"Basic {self._encoded()}"}

    def secrets(self) -> list[str]:
        return [self.password.get_secret_value(), self._encoded()]


class ApiKeyAuth(_AuthBase):
    type: Literal["api_key"]
    name: str
    value: SecretStr
    in_: Literal["header", "query"] = Field(default="header", alias="in")

    def session_headers(self) -> dict[str, str]:
        return {self.name: self.value.get_secret_value()} if self.in_ == "header" else {}

    def flow(self, request: Request) -> AuthFlow:
        if self.in_ == "query":
            request = request.with_params(**{self.name: self.value.get_secret_value()})
        yield request


AuthConfig = Annotated[BearerAuth | BasicAuth | ApiKeyAuth, Field(discriminator="type")]
