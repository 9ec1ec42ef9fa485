"""A connector's run-time credential (an OAuth2 token, a login cookie), one per channel.

Auth flows that need one share it: the first request that asks obtains it under the
cache's lock while the others wait, so a burst of requests costs one token fetch or one
login (single flight). If it cannot be obtained, every request of the channel fails with
that one ``CredentialError`` without being sent, instead of each repeating the login.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

from podium.connectors import Connector, Credential, NeedCredential, Request, Response
from podium.pipeline import CredentialError, PluginError, RequestError

from .._redact import Redactor

# Sends one request of the credential flow; raises for an answer that is not a success.
SendOk = Callable[[Request], Awaitable[Response]]


class CredentialCache:
    """The channel's current credential, its expiry and the first failure to obtain one."""

    def __init__(self) -> None:
        self.credential: Credential | None = None
        self.deadline = float("inf")
        self.failure: CredentialError | None = None
        self._lock = anyio.Lock()

    def usable(self, need: NeedCredential) -> Credential | None:
        """The current credential, unless it expired or is the one the flow found stale."""
        current = self.credential
        if current is not None and current is not need.stale and time.monotonic() < self.deadline:
            return current
        return None

    async def get(
        self,
        need: NeedCredential,
        obtain: Callable[[], Awaitable[Credential]],
        redact: Redactor,
    ) -> Credential:
        """The current credential, or a new one obtained exactly once however many requests
        ask at the same moment; its secrets are masked from then on."""
        current = self.usable(need)
        if current is not None:
            return current
        async with self._lock:
            if self.failure is not None:
                raise self.failure
            current = self.usable(need)
            if current is not None:
                return current
            try:
                credential = await obtain()
            except CredentialError as exc:
                self.failure = exc
                raise
            self.credential = credential
            self.deadline = (
                float("inf")
                if credential.expires_in is None
                else time.monotonic() + credential.expires_in
            )
            redact.add(credential.secrets)
            return credential


async def run_credential_flow(connector: Connector, send: SendOk, redact: Redactor) -> Credential:
    """Drive the connector's credential flow (token request, login) to its credential; a
    request that fails becomes one ``CredentialError`` naming the connector and, for an
    answer, an excerpt of what it said (masked)."""
    flow = connector.credential_flow()
    if flow is None:
        raise PluginError(
            f"connector {connector.name!r}: its auth asked for a credential it cannot obtain"
        )
    try:
        outgoing = next(flow)
        while True:
            outgoing = flow.send(await send(outgoing))
    except StopIteration as done:
        credential: Credential = done.value
        return credential
    except RequestError as exc:
        raise _credential_error(connector, exc, redact) from None
    finally:
        flow.close()


def _credential_error(connector: Connector, exc: RequestError, redact: Redactor) -> CredentialError:
    excerpt = ""
    if exc.response is not None and exc.response.body:
        excerpt = f"; it answered {redact(exc.response.excerpt())!r}"
    return CredentialError(
        f"connector {connector.name!r} could not obtain its credential: {exc.message}{excerpt}",
        request=exc.request,
        response=exc.response,
        attempts=exc.attempts,
        url=exc.url,
        reason=f"could not obtain the connector's credential: {exc.reason}",
        connected=exc.connected,
    )
