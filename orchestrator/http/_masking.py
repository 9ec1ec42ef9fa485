"""What a cassette keeps of an exchange, with its secrets masked, and how a replayed
request is matched against it.

The same functions mask a recording when it is written (with the run's redactor, which
by then knows every credential the run obtained) and a replayed request when it is
looked up — so a request whose real values the cassette masked still matches, whatever
those values are in the replaying run. Masked, as ``***``:

- every value the run's redactor knows (connector credentials, values the config took
  from the environment, obtained OAuth2 tokens), wherever it appears: URL, query,
  headers, request and response bodies;
- the value of a query parameter named as a credential (``access_token``, ``api_key``,
  ``signature``, …). Exact names only: the log redactor's substring rule would also mask
  ``author`` or ``keywords``, and requests differing only there would become one;
- request headers ``Authorization`` and ``Proxy-Authorization`` (their scheme kept),
  ``Cookie``, and any request header whose name says credential; the values of the
  cookies a response sets.

Response bodies keep everything else as it came: replayed records are the recorded ones.

A request matches by method, URL without its query (scheme, host, port, path), its query
pairs in any order, and its body (JSON compared parsed, a form as pairs in any order) —
vcrpy's ``method, uri, query, body`` matchers. Headers are not matched (vcrpy's default
too): they carry the masked credentials, and a replay must not depend on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from yarl import URL

from podium.connectors import Request

from .._redact import MASK, Redactor
from ._transport import _query

CREDENTIAL_PARAMS = frozenset(
    {"access_token", "refresh_token", "id_token", "token", "api_key", "apikey", "api-key",
     "client_secret", "secret", "password", "passwd", "signature", "sig",
     "x-amz-signature", "x-amz-credential", "x-amz-security-token",
     "x-goog-signature", "x-goog-credential"}
)  # fmt: skip
# Such a parameter inside a URL written in a header (Location, Link, Content-Location).
_URL_CREDENTIAL = re.compile(
    r"(?i)([?&](?:" + "|".join(re.escape(p) for p in sorted(CREDENTIAL_PARAMS)) + r")=)"
    r"[^&#\s>;,\"']*"
)
# Request headers whose name says they carry a credential (they are never matched, so
# masking one too many costs nothing).
_SECRET_HEADER = re.compile(r"(?i)token|secret|passw|api[-_]?key|auth|session|signature|cred")
_KEPT_HEADERS = frozenset({"idempotency-key"})  # podium's own, and useful to read

Pairs = tuple[tuple[str, str], ...]
# (method, URL without query, sorted query pairs, body): what a replayed request is found by.
Key = tuple[str, str, Pairs, tuple[str, Any] | None]


# -- URLs -------------------------------------------------------------------------------
def _param(name: str, value: str, mask: Redactor) -> str:
    return MASK if name.lower() in CREDENTIAL_PARAMS else mask.mask_values(value)


def _split(url: URL, mask: Redactor) -> tuple[str, list[tuple[str, str]]]:
    """The URL without user, query and fragment (masked), and its masked query pairs."""
    base = str(url.with_user(None).with_query(None).with_fragment(None))
    pairs = [(k, _param(k, v, mask)) for k, v in url.query.items()]
    return mask.mask_values(base), pairs


def wire_url(request: Request) -> URL:
    """The URL as aiohttp sends it: the request's URL with its params appended."""
    url = URL(request.url)
    query = _query(request.params)
    return url.extend_query(query) if query else url


def _uri(base: str, pairs: list[tuple[str, str]]) -> str:
    # ``*`` stays readable: the mask is ``***``, not ``%2A%2A%2A``.
    return f"{base}?{urlencode(pairs, safe='*')}" if pairs else base


def masked_url_text(text: str, mask: Redactor) -> str:
    """A URL written in a header: known secrets and credential parameters masked."""
    return _URL_CREDENTIAL.sub(rf"\1{MASK}", mask.mask_values(text))


# -- bodies -----------------------------------------------------------------------------
def _tree(value: Any, mask: Redactor) -> Any:
    if isinstance(value, str):
        return mask.mask_values(value)
    if isinstance(value, dict):
        return {k: _tree(v, mask) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tree(v, mask) for v in value]
    return value


def _json_key(value: Any) -> tuple[str, Any]:
    return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def _stored_body_key(body: Any, mask: Redactor) -> tuple[str, Any] | None:
    """The match key of a body as a cassette holds it: text, bytes, or — in cassettes that
    vcrpy's aiohttp stubs recorded from ``json=`` — the JSON value itself."""
    if body is None or body in ("", b""):
        return None
    if isinstance(body, dict | list):
        return _json_key(_tree(body, mask))
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        return _json_key(_tree(orjson.loads(text), mask))
    except orjson.JSONDecodeError:
        pass
    pairs = parse_qsl(text, keep_blank_values=True)
    if pairs:
        return ("form", tuple(sorted((k, mask.mask_values(v)) for k, v in pairs)))
    return ("raw", mask.mask_values(text))  # podium never sends one: it matches nothing


def mask_body(body: bytes, mask: Redactor) -> str | bytes:
    """A response body with known secrets masked: text when it is UTF-8, else bytes."""
    try:
        return mask.mask_values(body.decode("utf-8"))
    except UnicodeDecodeError:
        # One byte per character, so ASCII secrets are found inside binary data too.
        return mask.mask_values(body.decode("latin-1")).encode("latin-1")


# -- headers ----------------------------------------------------------------------------
def mask_request_headers(headers: Mapping[str, str], mask: Redactor) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in ("authorization", "proxy-authorization"):
            scheme, sep, _credential = value.partition(" ")
            value = f"{scheme} {MASK}" if sep else MASK
        elif lower == "cookie" or (lower not in _KEPT_HEADERS and _SECRET_HEADER.search(lower)):
            value = MASK
        else:
            value = masked_url_text(value, mask)
        out.setdefault(name, []).append(value)
    return out


def mask_response_headers(
    headers: Iterable[tuple[str, str]], mask: Redactor
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        if name.lower() == "set-cookie":
            pair, sep, attributes = value.partition(";")
            value = f"{pair.partition('=')[0]}={MASK}{sep}{attributes}"
        else:
            value = masked_url_text(value, mask)
        out.setdefault(str(name), []).append(value)
    return out


# -- requests ---------------------------------------------------------------------------
def kept_request(request: Request, mask: Redactor) -> dict[str, Any]:
    """The request as a cassette keeps it (vcrpy's request mapping), masked."""
    base, pairs = _split(wire_url(request), mask)
    headers = dict(request.headers)
    body: str | None = None
    if request.json is not None:
        body = orjson.dumps(_tree(request.json, mask)).decode()
        headers.setdefault("Content-Type", "application/json")
    elif request.form:
        body = urlencode([(k, mask.mask_values(v)) for k, v in request.form.items()], safe="*")
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    return {
        "method": request.method.upper(),
        "uri": _uri(base, pairs),
        "body": body,
        "headers": mask_request_headers(headers, mask),
    }


def request_key(request: Request, mask: Redactor, url: URL | None = None) -> Key:
    """The match key of a request about to be sent (``url``: its ``wire_url``, when the
    caller has it already)."""
    base, pairs = _split(url if url is not None else wire_url(request), mask)
    body: tuple[str, Any] | None = None
    if request.json is not None:
        body = _json_key(_tree(request.json, mask))
    elif request.form:
        body = ("form", tuple(sorted((k, mask.mask_values(v)) for k, v in request.form.items())))
    return (request.method.upper(), base, tuple(sorted(pairs)), body)


def stored_key(kept: Mapping[str, Any], mask: Redactor) -> Key:
    """The match key of a request a cassette holds (masking again is a no-op on what a
    recording masked; it masks what a foreign cassette kept in the clear)."""
    base, pairs = _split(URL(str(kept["uri"])), mask)
    body = _stored_body_key(kept.get("body"), mask)
    return (str(kept["method"]).upper(), base, tuple(sorted(pairs)), body)


def shown(key: Key) -> str:
    """``METHOD URL`` of a key, for messages (already masked)."""
    method, base, pairs, _body = key
    return f"{method} {_uri(base, list(pairs))}"
