"""Record a run's exchanges into cassettes, and serve a run from them with no socket.

- ``RecordingTransport`` wraps a real transport: every exchange passes through as it
  would, and is written down, masked, when the transport closes at the end of the run
  (by then the run's redactor knows every credential the run obtained, so a token
  response recorded before the token was known is masked too).
- ``PlaybackTransport`` answers from a cassette alone. Each recorded interaction answers
  once; identical requests get the recorded answers in the order they were recorded (a
  503 then its retry's 200). A request the cassette does not hold raises
  ``CassetteError`` naming it, and the run fails: a replay never falls back to the
  network and never goes on with a hole in its data.

One cassette per connector (``record_to``/``play_from``, file ``DIR/<connector>.yaml``):
a connector has its own session, cookie jar and credential, so its exchanges stand on
their own — a connector's tests can ship the cassette of that connector alone, and
re-recording one API leaves the others' files untouched.

A streamed body (NDJSON, CSV, XML read as it arrives) is kept whole as it passes and
written as one body: a cassette is a YAML file of whole bodies, so recording a body costs
its size in memory — record a sample, not a day's export. The replay hands the recorded
body to the same decoders, so it yields the same records.

A request that got no answer at all (a timeout, a refused connection) is not recorded:
vcrpy's format has no place for it. The replay serves the answer its retry got; a
request that never got one is missing from the cassette, and its replay fails there.
"""

from __future__ import annotations

import http
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
from loguru import logger
from multidict import CIMultiDict, CIMultiDictProxy

from podium.connectors import BodyStream, Connector, Request, Response
from podium.pipeline import CassetteError

from .._redact import Redactor
from ._cassette import (
    Interaction,
    cassette_path,
    read_cassette,
    response_body,
    response_headers,
    write_cassette,
)
from ._masking import (
    Key,
    kept_request,
    mask_body,
    mask_response_headers,
    request_key,
    shown,
    stored_key,
    wire_url,
)
from ._transport import AiohttpTransport, Transport, _links


class RecordingTransport(Transport):
    """Sends through ``inner``; writes every exchange to the cassette at ``path`` when
    closed (the file is replaced whole). ``requests`` lists what it sent, in order."""

    def __init__(self, inner: Transport, path: str | Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self.requests: list[Request] = []
        self._responses: list[Response] = []
        self._redactor = Redactor()

    def redact_with(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self.inner.redact_with(redactor)

    async def send(self, request: Request, *, cookies: bool = True) -> Response:
        self.requests.append(request)
        response = await self.inner.send(request, cookies=cookies)
        self._responses.append(response)  # kept whole; masked once, when written
        if response.stream is not None:
            response.stream = _Kept(response.stream, response)
        return response

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            # Masking and YAML are CPU work: off the loop, with the file write.
            await anyio.to_thread.run_sync(self._write)

    def _write(self) -> None:
        interactions = [self._kept(r) for r in self._responses]
        self._warn_if_ambiguous()
        write_cassette(self.path, interactions)
        logger.info("recorded {} exchanges in {}", len(interactions), self.path)

    def _kept(self, response: Response) -> Interaction:
        mask = self._redactor
        status = response.status
        kept: dict[str, Any] = {
            "status": {"code": status, "message": _phrase(status)},
            "headers": mask_response_headers(response.headers.items(), mask),
            "body": {"string": mask_body(response.body, mask)},
            "elapsed": round(response.elapsed, 6),
        }
        if response.certificate is not None:
            kept["certificate"] = {"expires_at": response.certificate["expires_at"]}
        return Interaction(kept_request(response.request, mask), kept)

    def _warn_if_ambiguous(self) -> None:
        """Requests that differ only in values the masking hides are one key on replay:
        served in recorded order, which concurrent requests need not keep. Said once."""
        sent: dict[Key, set[str]] = defaultdict(set)
        for response in self._responses:
            request = response.request
            # Headers apart: a request sent again with a refreshed token is the same one.
            raw = (request.method, str(wire_url(request)), request.json, request.form)
            sent[request_key(request, self._redactor)].add(repr(raw))
        alike = [key for key, raws in sent.items() if len(raws) > 1]
        if alike:
            logger.warning(
                "{}: {} requests differ only in masked values (e.g. {}); a replay answers "
                "them in the order they were recorded",
                self.path,
                sum(len(sent[k]) for k in alike),
                self._redactor(shown(alike[0])),
            )


class PlaybackTransport(Transport):
    """Answers every request from the cassette at ``path``; no socket is opened.

    Each run plays the cassette from its start. ``requests`` lists every request it
    received, in order (as ``MockTransport`` does), so a test can check what a connector
    sent, headers included; ``unplayed`` counts the interactions no request asked for yet.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.interactions = read_cassette(self.path)
        self.requests: list[Request] = []
        self._redactor = Redactor()
        self._index: dict[Key, deque[int]] | None = None

    def redact_with(self, redactor: Redactor) -> None:
        self._redactor = redactor
        # A new run: its keys are masked with its secrets, and every answer is there again.
        self._index = None

    @property
    def unplayed(self) -> int:
        return sum(len(q) for q in self._index.values()) if self._index is not None else 0

    def _built(self) -> dict[Key, deque[int]]:
        index: dict[Key, deque[int]] = defaultdict(deque)
        for n, interaction in enumerate(self.interactions):
            index[stored_key(interaction.request, self._redactor)].append(n)
        self._index = dict(index)
        return self._index

    async def send(self, request: Request, *, cookies: bool = True) -> Response:
        # A checkpoint, as a real exchange has: the run's deadline and cancellation reach
        # a replay too, and a long replay does not hold the loop.
        await anyio.lowlevel.checkpoint()
        self.requests.append(request)
        index = self._index if self._index is not None else self._built()
        url = wire_url(request)
        key = request_key(request, self._redactor, url)
        queue = index.get(key)
        if not queue:
            raise CassetteError(self._miss(key, queue is not None))
        return self._response(
            request, str(url.with_user(None)), self.interactions[queue.popleft()].response
        )

    def _response(self, request: Request, url: str, kept: Mapping[str, Any]) -> Response:
        """The recorded answer; its URL is the request's as aiohttp reports it (the real
        one: the cassette's is masked)."""
        headers = CIMultiDict(response_headers(kept))
        return Response(
            request,
            int(kept["status"]["code"]),
            CIMultiDictProxy(headers),
            response_body(kept),
            url,
            float(kept.get("elapsed", 0.0)),
            links=_links(headers, url),
            certificate=_certificate(kept.get("certificate")),
        )

    def _miss(self, key: Key, played: bool) -> str:
        where = f"not in the cassette {self.path}"
        if played:
            mask = self._redactor
            times = sum(1 for i in self.interactions if stored_key(i.request, mask) == key)
            where = f"the cassette {self.path} answers it {times} time(s), all played already"
        else:
            method, base = key[0], key[1]
            similar = [k for k in self._index or {} if k[0] == method and k[1] == base]
            if similar:
                where += f" (it holds {shown(similar[0])} with another query or body)"
            elif self.interactions:
                first = stored_key(self.interactions[0].request, self._redactor)
                where += f" (its requests start with {shown(first)})"
        return self._redactor(f"{shown(key)}: {where}; record it again with --record")

    async def aclose(self) -> None:
        left = self.unplayed
        if left:
            logger.info("{}: {} recorded interactions were not asked for", self.path, left)


class _Kept:
    """Passes a streamed body on, chunk by chunk, and keeps a copy for the cassette: the
    response's ``body`` is the whole of what was read once the stream is closed."""

    def __init__(self, inner: BodyStream, response: Response) -> None:
        self._inner = inner
        self._response = response
        self._parts: list[bytes] = []

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner.chunks():
            self._parts.append(chunk)
            yield chunk

    async def aclose(self) -> None:
        self._response.body = b"".join(self._parts)
        self._parts = []
        await self._inner.aclose()


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _certificate(kept: Any) -> dict[str, Any] | None:
    """The recorded peer certificate's expiry; the days left are counted from now, as a
    live exchange would count them."""
    if not isinstance(kept, dict) or not kept.get("expires_at"):
        return None
    expires = datetime.fromisoformat(str(kept["expires_at"]))  # checked when read
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    seconds = (expires - datetime.now(UTC)).total_seconds()
    return {"expires_at": expires.isoformat(), "expires_in_days": round(seconds / 86400, 3)}


# -- one cassette per connector ---------------------------------------------------------
def record_to(directory: str | Path, connectors: Mapping[str, Connector]) -> dict[str, Transport]:
    """A ``RecordingTransport`` over aiohttp for each connector, into ``DIR/<name>.yaml``
    (the directory is made now, so a path that cannot be written fails before the run)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CassetteError(f"{directory}: cannot make the cassette directory: {exc}") from None
    return {
        name: RecordingTransport(AiohttpTransport(c.config), cassette_path(directory, name))
        for name, c in connectors.items()
    }


def play_from(directory: str | Path, connectors: Mapping[str, Connector]) -> dict[str, Transport]:
    """A ``PlaybackTransport`` for each connector, from ``DIR/<name>.yaml``; a missing or
    unreadable cassette is a ``CassetteError`` before anything runs."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CassetteError(f"{directory}: no such cassette directory (record one with --record)")
    return {name: PlaybackTransport(cassette_path(directory, name)) for name in connectors}
