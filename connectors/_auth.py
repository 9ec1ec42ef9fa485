"""Authentication as request flows, the way httpx models it.

An auth's ``flow`` is a generator: it yields the request to send and receives the
response, so schemes that need a round trip stay pure descriptions while the
orchestrator does the sending.

Schemes whose credential is obtained at run time (an OAuth2 token, a login cookie) yield
``NeedCredential`` and receive a ``Credential``. The gateway keeps one credential per
connector session and obtains it by driving ``credential_flow`` under a lock, so many
concurrent requests share one token fetch; ``NeedCredential(stale=c)`` after a 401 asks
for a new one unless another request has already replaced ``c``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from podium.pipeline import ResponseError

from ._messages import Request, Response


@dataclass(frozen=True, slots=True, eq=False)
class Credential:
    """A credential obtained at run time; compared by identity, so a refresh is always new."""

    value: str
    # Seconds it stays usable (already shortened by the scheme's safety margin); None: no end.
    expires_in: float | None = None
    # What must be masked wherever podium writes text (logs, errors, the database).
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NeedCredential:
    """Yielded by a flow to get the connector's current credential (a ``Credential``)."""

    stale: Credential | None = None


# Yields a Request (receives its Response) or a NeedCredential (receives a Credential).
AuthFlow = Generator[Request | NeedCredential, Any, None]
# Yields the requests that obtain a credential; returns the credential.
CredentialFlow = Generator[Request, Response, Credential]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(value: str, what: str) -> str:
    """Refuse control characters (CR/LF above all) in what goes into a header: they would
    split it into two, and aiohttp refuses to send them anyway. Says what, never the value."""
    match = _CONTROL.search(value)
    if match is not None:
        char = {"\r": "CR", "\n": "LF", "\t": "TAB"}.get(
            match.group(), f"\\x{ord(match.group()):02x}"
        )
        raise ValueError(f"{what} contains a control character ({char}); it must be one line")
    return value


def _absolute(url: str, base_url: str) -> str:
    return url if url.startswith(("http://", "https://")) else base_url + url


class _AuthBase(BaseModel):
    """Base of every auth scheme; a plugin's own scheme subclasses ``Auth``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_line_values(self) -> _AuthBase:
        for name, value in self.__dict__.items():
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if isinstance(text, str):
                one_line(text, f"auth.{name}")
        return self

    def session_headers(self) -> dict[str, str]:
        """Headers sent with every request to the connector's origin."""
        return {}

    def flow(self, request: Request) -> AuthFlow:
        yield request

    @property
    def changes_requests(self) -> bool:
        """Whether ``flow`` does anything beyond the session's headers."""
        return type(self).flow is not _AuthBase.flow

    def credential_flow(self, base_url: str) -> CredentialFlow | None:
        """How to obtain the run-time credential; None for schemes that need none."""
        return None

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

    @property
    def changes_requests(self) -> bool:
        return self.in_ == "query"

    def flow(self, request: Request) -> AuthFlow:
        if self.in_ == "query":
            request = request.with_params(**{self.name: self.value.get_secret_value()})
        yield request


class OAuth2ClientCredentials(_AuthBase):
    """OAuth2 client credentials (RFC 6749 §4.4): one token per session, renewed on expiry
    and, once, when the API answers 401."""

    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    # Further form fields some providers need (audience, resource).
    extra: dict[str, str] = Field(default_factory=dict)
    # "basic" sends the client credentials as HTTP Basic (client_secret_basic), "body" as
    # form fields (client_secret_post).
    client_auth: Literal["body", "basic"] = "body"
    # Renew this many seconds before the token's stated expiry, so no request carries a
    # token that expires in flight. A token that lives less than twice the margin is
    # renewed half-way through its life instead: it is still reused, never refetched
    # for every request.
    expiry_margin: float = Field(default=30.0, ge=0)

    def _margin(self, expires_in: float) -> float:
        """How long before the stated expiry to renew: the configured margin, but at most
        half the token's life, so a short-lived token still serves many requests."""
        return min(self.expiry_margin, expires_in / 2)

    def _basic(self) -> str:
        raw = f"{self.client_id}:{self.client_secret.get_secret_value()}".encode()
        return base64.b64encode(raw).decode("ascii")

    def flow(self, request: Request) -> AuthFlow:
        credential = yield NeedCredential()
        response = yield request.with_headers(Authorization=f"Bearer {credential.value}")
        if response.status == 401:
            credential = yield NeedCredential(stale=credential)
            yield request.with_headers(Authorization=f"Bearer {credential.value}")

    def credential_flow(self, base_url: str) -> CredentialFlow:
        form = {"grant_type": "client_credentials", **self.extra}
        headers = {"Accept": "application/json"}
        if self.scope:
            form["scope"] = self.scope
        if self.client_auth == "basic":
            headers["Authorization"] = f"Basic {self._basic()}"
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret.get_secret_value()
        url = _absolute(self.token_url, base_url)
        response = yield Request("POST", url, headers=headers, form=form)
        body = response.json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ResponseError("the token response has no 'access_token'")
        expires_in = body.get("expires_in")
        try:
            seconds = None if expires_in in (None, "") else float(expires_in)
            if seconds is not None and seconds != seconds:  # NaN
                raise ValueError
        except (TypeError, ValueError):
            raise ResponseError(
                f"the token response's expires_in {expires_in!r} is not a number"
            ) from None
        lifetime = None if seconds is None else max(0.0, seconds - self._margin(seconds))
        return Credential(token, lifetime, (token, f"Bearer {token}"))

    def secrets(self) -> list[str]:
        return [self.client_secret.get_secret_value(), self._basic()]


class CookieLogin(_AuthBase):
    """Log in once per session with a POST; the session's cookie jar carries the login.

    Each connector has a session and a cookie jar of its own, so two connectors logged in
    as different users never share a cookie. A 401 logs in again, once.
    """

    type: Literal["cookie_login"]
    login_url: str
    username: str
    password: SecretStr
    username_field: str = "username"
    password_field: str = "password"
    body: Literal["form", "json"] = "form"
    extra: dict[str, str] = Field(default_factory=dict)

    def flow(self, request: Request) -> AuthFlow:
        credential = yield NeedCredential()
        response = yield request
        if response.status == 401:
            yield NeedCredential(stale=credential)
            yield request

    def credential_flow(self, base_url: str) -> CredentialFlow:
        fields = {
            self.username_field: self.username,
            self.password_field: self.password.get_secret_value(),
            **self.extra,
        }
        url = _absolute(self.login_url, base_url)
        if self.body == "json":
            yield Request("POST", url, json=fields)
        else:
            yield Request("POST", url, form=fields)
        # The login's Set-Cookie is in the session's jar now; the value only marks the login.
        return Credential("cookie-session")


AuthConfig = Annotated[
    BearerAuth | BasicAuth | ApiKeyAuth | OAuth2ClientCredentials | CookieLogin,
    Field(discriminator="type"),
]
Auth = _AuthBase
"""The public name of the auth base class, for plugins."""
AUTH_MODELS: tuple[type[_AuthBase], ...] = (
    BearerAuth,
    BasicAuth,
    ApiKeyAuth,
    OAuth2ClientCredentials,
    CookieLogin,
)
AUTH_TYPES = ("bearer", "basic", "api_key", "oauth2_client_credentials", "cookie_login")
