"""Cassette files: a connector's exchanges in vcrpy's YAML cassette format (version 1).

The format is vcrpy's, so a cassette can be read, edited and shared with the tools that
know it — vcrpy itself plays podium's cassettes back, and podium plays vcrpy's::

    interactions:
    - request:
        body: null
        headers:
          Accept: [application/json]
          Authorization: [Bearer ***]
        method: GET
        uri: http://127.0.0.1:8765/air?city=ams
      response:
        body: {string: '{"data":{"city":"ams","pm25":9.4}}'}
        elapsed: 0.0042
        headers:
          Content-Type: [application/json; charset=utf-8]
        status: {code: 200, message: OK}
    version: 1

``elapsed`` (seconds the exchange took) and ``certificate`` (a TLS peer's expiry) are
podium's additions to the response mapping; vcrpy ignores them, and a cassette without
them replays with an elapsed time of 0. A body that is UTF-8 text is kept as text; any
other as bytes, which YAML writes as base64 (``!!binary``). A body is what the transport
delivered: aiohttp has undone gzip, deflate or brotli already, as vcrpy's aiohttp stubs
record too, and the headers are kept as the server sent them.

Hand-written here, vcrpy not used at run time: its aiohttp stubs patch
``aiohttp.ClientSession`` for the whole process (every connector's session, and the
alert sender's) while podium has a transport seam per connector; its ``Cassette``
matches by scanning every interaction for each request (quadratic in a long run) and
raises its own exceptions. What it defines well — the file format — is kept exactly;
PyYAML (with libyaml's C loader and dumper when present) reads and writes it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from podium.pipeline import CassetteError

FORMAT_VERSION = 1
SUFFIX = ".yaml"


@dataclass(frozen=True, slots=True)
class Interaction:
    """One exchange as a cassette holds it: vcrpy's request and response mappings."""

    request: Mapping[str, Any]
    response: Mapping[str, Any]


def cassette_path(directory: Path, connector: str) -> Path:
    """``DIR/<connector>.yaml``; a name that is not a plain file name is percent-encoded."""
    return Path(directory) / f"{quote(connector, safe='-_.')}{SUFFIX}"


def read_cassette(path: Path) -> list[Interaction]:
    """The interactions of the cassette at ``path``, checked; ``CassetteError`` naming the
    file and the key path when it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CassetteError(f"{path}: no such cassette") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"{path}: cannot read the cassette: {exc}") from None
    import yaml  # only a run with cassettes pays for it

    # libyaml's C loader is ~10x faster than PyYAML's; both are the safe variant.
    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # a safe loader: no Python tags
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CassetteError(f"{path}{line}: not a YAML cassette: {problem}") from None
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise CassetteError(f"{path}: a cassette is a mapping with an 'interactions' list")
    return [_interaction(path, i, item) for i, item in enumerate(data["interactions"])]


def _interaction(path: Path, index: int, item: Any) -> Interaction:
    where = f"{path}: interactions[{index}]"
    request = item.get("request") if isinstance(item, dict) else None
    response = item.get("response") if isinstance(item, dict) else None
    if not isinstance(request, dict) or not isinstance(response, dict):
        raise CassetteError(f"{where}: needs a 'request' and a 'response' mapping")
    for key in ("method", "uri"):
        if not isinstance(request.get(key), str) or not request[key]:
            raise CassetteError(f"{where}.request.{key}: expected a string")
    status = response.get("status")
    code = status.get("code") if isinstance(status, dict) else None
    if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:
        raise CassetteError(f"{where}.response.status.code: expected an HTTP status (100-599)")
    body = response.get("body")
    if body is not None and not isinstance(body, dict):
        raise CassetteError(f"{where}.response.body: expected a mapping with 'string'")
    if isinstance(body, dict) and not isinstance(body.get("string", ""), str | bytes):
        raise CassetteError(f"{where}.response.body.string: expected text or !!binary")
    headers = response.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise CassetteError(f"{where}.response.headers: expected a mapping")
    elapsed = response.get("elapsed", 0.0)
    if not isinstance(elapsed, int | float) or isinstance(elapsed, bool) or elapsed < 0:
        raise CassetteError(f"{where}.response.elapsed: expected seconds (a number >= 0)")
    certificate = response.get("certificate")
    if certificate is not None:
        expires = certificate.get("expires_at") if isinstance(certificate, dict) else None
        try:
            datetime.fromisoformat(str(expires))
        except ValueError:
            raise CassetteError(
                f"{where}.response.certificate.expires_at: expected an ISO 8601 time"
            ) from None
    return Interaction(request, response)


def response_body(response: Mapping[str, Any]) -> bytes:
    body = (response.get("body") or {}).get("string") or b""
    return body if isinstance(body, bytes) else str(body).encode("utf-8")


def response_headers(response: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value) pairs; vcrpy writes a list of values per name, hand-written files
    often a single one."""
    out: list[tuple[str, str]] = []
    for name, values in (response.get("headers") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            out.append((str(name), str(value)))
    return out


def _sorted(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: mapping[key] for key in sorted(mapping)}


def write_cassette(path: Path, interactions: Sequence[Interaction]) -> None:
    """Write the cassette whole and atomically: a reader never sees half a file, and a
    failed write leaves the previous cassette in place."""
    data = {
        "interactions": [
            {"request": _sorted(i.request), "response": _sorted(i.response)} for i in interactions
        ],
        "version": FORMAT_VERSION,
    }
    import yaml

    dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    # Keys in vcrpy's (sorted) order, headers in the order they came.
    text = yaml.dump(data, Dumper=dumper, allow_unicode=True, sort_keys=False, width=100)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        raise CassetteError(f"{path}: cannot write the cassette: {exc.strerror or exc}") from None
