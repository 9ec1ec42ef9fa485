"""Real destinations for the alert senders, on loopback only.

- ``SMTPServer`` (``running_smtp_server()``): an aiosmtpd server in its own thread
  (aiosmtpd's ``Controller``), on an ephemeral 127.0.0.1 port, that accepts
  ``AUTH PLAIN/LOGIN`` over plain text for one user and collects every message;
  ``refuse`` makes it answer 554 to DATA, the way a mail server that will not take the
  message does.
- ``WebhookReceiver``: an aiohttp app (start it with the ``serve`` fixture) that records
  every request — method, path, headers, JSON body — and answers 500 for the next
  ``fail_next`` requests, or for all of them while ``fail_always`` is set.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        """Every text part, decoded (Apprise may send text and HTML alternatives)."""
        parts = [
            part.get_content()
            for part in self.message.walk()
            if part.get_content_maintype() == "text"
        ]
        return "\n".join(str(p) for p in parts)


class _Handler:
    def __init__(self, server: SMTPServer) -> None:
        self._server = server

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        if self._server.refuse:
            return "554 5.7.1 Message refused by policy (test server)"
        raw = envelope.original_content or envelope.content or b""
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if session.auth_data else None
        with self._server.lock:
            self._server.messages.append(
                ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message, login)
            )
        return "250 OK"


class _EphemeralController(Controller):
    """aiosmtpd's Controller, bound to port 0: its start-up probe connects to
    ``self.port``, so read the port the kernel chose before the probe runs."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class SMTPServer:
    user: str = "podium"
    password: str = "s3cret-smtp-pass"
    refuse: bool = False
    messages: list[ReceivedMail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.user
            and data.password.decode() == self.password
        )
        # handled=False: aiosmtpd answers a failure itself ("535 5.7.8 …"); with the
        # default (True) it answers nothing and the client waits for its timeout.
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    def mailto(self, *, password: str | None = None, to: str = "ops@example.com") -> str:
        """The Apprise URL for this server: plain SMTP (no TLS) on loopback."""
        secret = self.password if password is None else password
        return (
            f"mailto://{self.user}:{secret}@127.0.0.1:{self.port}"
            f"?from=podium@example.com&to={to}&mode=insecure"
        )


@contextmanager
def running_smtp_server() -> Iterator[SMTPServer]:
    """An ``SMTPServer`` listening for the duration (a fixture wraps it)."""
    server = SMTPServer()
    controller = _EphemeralController(
        _Handler(server),
        hostname="127.0.0.1",
        port=0,
        server_hostname="smtp.test",
        authenticator=server._authenticate,
        auth_require_tls=False,  # loopback, no TLS: let AUTH be offered in plain text
        ready_timeout=5,
    )
    controller.start()
    server.port = controller.port
    try:
        yield server
    finally:
        controller.stop()


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A loopback port that accepts connections and never says a word (an SMTP server
    that hangs before its banner); on exit every connection is closed, so a client still
    waiting in a worker thread gets EOF at once instead of its own socket timeout."""
    done = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await done.wait()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in writers:
            writer.close()
        done.set()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)  # let the handlers return before the loop closes


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class WebhookReceiver:
    requests: list[ReceivedRequest] = field(default_factory=list)
    fail_next: int = 0
    fail_always: bool = False
    status: int = 500
    answer: str = "receiver is down (test)"
    # Seconds to wait before answering (a receiver slower than the sender's timeout).
    delay: float = 0.0
    # Put the request's Authorization header in a failing answer (a receiver that echoes).
    echo_authorization: bool = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        body: Any = await request.json() if request.can_read_body else None
        self.requests.append(
            ReceivedRequest(request.method, request.path, dict(request.headers), body)
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_always or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            text = self.answer
            if self.echo_authorization:
                text += f" (you sent Authorization: {request.headers.get('Authorization')})"
            return web.Response(status=self.status, text=text)
        return web.json_response({"ok": True})
