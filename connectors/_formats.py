"""Body decoders: bytes in, records out, a chunk at a time — no I/O (sans-I/O, as h11).

The engine feeds each chunk of a body as it arrives (``feed``) and ends it (``close``);
a decoder holds only the unfinished line or element between chunks, so a body larger than
memory passes through in the size of its records. The same decoders read a body that
arrived whole (a replayed cassette, a paginated page): one ``feed``, one ``close``.

A decoder that meets a line it cannot read returns the records before it first, then
raises ``MalformedBody`` naming the line on the next call: what was good is kept.

``choose`` picks a format for ``auto`` from the Content-Type, then the URL's suffix;
``gunzip`` wraps a decoder when the payload itself is a ``.gz`` file.
"""

from __future__ import annotations

import codecs
import csv
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from podium.pipeline import CsvOptions, Expr, MalformedBody, Record, ResponseError

from . import _json
from ._xml import XmlDecoder

__all__ = ["CsvDecoder", "Decoder", "NdjsonDecoder", "XmlDecoder", "choose", "gunzip", "is_gzip"]

_CONTENT_TYPES = {
    "application/json": "json",
    "text/json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "application/jsonlines": "ndjson",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/xml": "xml",
    "text/xml": "xml",
}
_SUFFIXES = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv", ".xml": "xml"}
_GZIP_TYPES = frozenset({"application/gzip", "application/x-gzip"})


class Decoder(Protocol):
    def feed(self, chunk: bytes) -> list[Record]:
        """The records completed by ``chunk``."""

    def close(self) -> list[Record]:
        """The records left when the body ends; raises if it ended mid-record."""


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("Content-Type", "").partition(";")[0].strip().lower()


def _path(url: str) -> str:
    return urlsplit(url).path.lower()


def is_gzip(headers: Mapping[str, str], url: str) -> bool:
    """Whether the payload is a gzip file (not a Content-Encoding, which aiohttp undoes).
    Asked of every JSON response: the common answer costs two substring tests."""
    media = headers.get("Content-Type")
    if media is not None and "gzip" in media and _media_type(headers) in _GZIP_TYPES:
        return True
    return ".gz" in url and _path(url).endswith(".gz")


def choose(headers: Mapping[str, str], url: str) -> str:
    """``auto``'s format: by Content-Type (``+json``/``+xml`` suffixes too), else by the
    URL's suffix under an optional ``.gz``, else JSON."""
    media = _media_type(headers)
    found = _CONTENT_TYPES.get(media)
    if found is None and media.endswith(("+json", "+xml")):
        found = media.rpartition("+")[2]
    if found is not None:
        return found
    path = _path(url).removesuffix(".gz")
    dot = path.rfind(".")
    return _SUFFIXES.get(path[dot:], "json") if dot >= 0 else "json"


def _bad(body_format: str, line: int | None, problem: str) -> MalformedBody:
    where = f"line {line}" if line is not None else "body"
    return MalformedBody(f"{body_format} {where}: {problem}", body_format=body_format, line=line)


class _Deferred:
    """Holds a decoder's error until the records before it have been handed out."""

    error: MalformedBody | None = None

    def _raise_pending(self) -> None:
        if self.error is not None:
            raise self.error


# -- NDJSON ------------------------------------------------------------------------------
class NdjsonDecoder(_Deferred):
    """One JSON value per line (blank lines skipped); an object is a record, any other
    value ``{"value": v}`` — as in a JSON list. ``records`` applies to each line."""

    def __init__(self, records: Expr | None = None) -> None:
        self._records = records
        self._rest = b""
        self._line = 0

    def feed(self, chunk: bytes) -> list[Record]:
        self._raise_pending()
        data = self._rest + chunk if self._rest else chunk
        lines = data.split(b"\n")
        self._rest = lines.pop()
        return self._decode(lines, _json.has_long_number(data))

    def close(self) -> list[Record]:
        self._raise_pending()
        rest, self._rest = self._rest, b""
        out = self._decode([rest], _json.has_long_number(rest)) if rest.strip() else []
        self._raise_pending()
        return out

    def _decode(self, lines: list[bytes], long_numbers: bool) -> list[Record]:
        """``long_numbers``: some line may hold an integer orjson would round (checked per
        chunk, not per line: the test costs little per call, but lines are many)."""
        out: list[Record] = []
        loads = _json.loads if long_numbers else orjson.loads
        records = self._records
        for line in lines:
            self._line += 1
            if not line or line.isspace():
                continue
            try:
                value = loads(line)
            except _json.JSONDecodeError as exc:
                self.error = _bad("ndjson", self._line, f"not JSON ({exc.msg})")
                break
            if records is not None:
                value = records.search(value)
                if value is None:
                    continue
            if isinstance(value, dict):
                out.append(value)
            elif isinstance(value, list):
                out.extend(v if isinstance(v, dict) else {"value": v} for v in value)
            else:
                out.append({"value": value})
        return out


# -- CSV ---------------------------------------------------------------------------------
class _Lines:
    """The csv reader's source: it is handed whole records only, so it never runs dry in
    the middle of one, and may be refilled after it said it was empty."""

    def __init__(self) -> None:
        self.queue: deque[str] = deque()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.queue:
            return self.queue.popleft()
        raise StopIteration


class CsvDecoder(_Deferred):
    """Rows as records by the header (or ``columns``), through the stdlib ``csv`` reader.

    Text is split into records before the reader sees it: a line ends a record when the
    quotes since the record began are balanced (``""`` inside a field counts two), so a
    quoted field may hold newlines and still arrive across chunks.
    """

    def __init__(self, options: CsvOptions) -> None:
        # A spreadsheet's UTF-8 export may start with a byte-order mark: not part of the
        # first column's name.
        codec = codecs.lookup(options.encoding).name
        decoder = "utf-8-sig" if codec == "utf-8" else codec
        self._codec = decoder
        self._text = codecs.getincrementaldecoder(decoder)(errors="strict")
        self._encoding = options.encoding
        self._lines = _Lines()
        self._reader = csv.reader(self._lines, delimiter=options.delimiter, strict=True)
        self._names: list[str] | None = list(options.columns) if options.columns else None
        self._skip_header = options.header
        self._rest = ""  # text after the last complete line
        self._open: list[str] = []  # lines of a record whose quotes are not closed yet
        self._quotes = 0

    def feed(self, chunk: bytes) -> list[Record]:
        self._raise_pending()
        held = self._text.getstate()[0]  # the bytes of a character split between chunks
        try:
            text = self._text.decode(chunk)
        except UnicodeDecodeError as exc:
            return self._undecodable(held + chunk, exc)
        return self._take(text, final=False)

    def close(self) -> list[Record]:
        self._raise_pending()
        held = self._text.getstate()[0]
        try:
            text = self._text.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return self._undecodable(held, exc)
        out = self._take(text, final=True)
        if self.error is None and self._open:
            self.error = _bad("csv", self._reader.line_num + 1, "a quoted field is not closed")
        self._raise_pending()
        return out

    def _undecodable(self, data: bytes, exc: UnicodeDecodeError) -> list[Record]:
        """The records before the byte that is not text, then the error at its line."""
        good = data[: exc.start].decode(self._codec, errors="replace")
        out = self._take(good, final=False)
        if self.error is None:
            # Lines the reader took, lines of an open record, then the byte's own line.
            line = self._reader.line_num + len(self._open) + 1
            self.error = _bad("csv", line, f"not {self._encoding} text ({exc.reason})")
        return out

    def _take(self, text: str, *, final: bool) -> list[Record]:
        data = self._rest + text if self._rest else text
        lines = data.split("\n")
        self._rest = "" if final else lines.pop()
        if final and lines and not lines[-1]:
            lines.pop()  # the body ended with a newline
        queue, open_lines = self._lines.queue, self._open
        quotes = self._quotes
        for line in lines:
            quotes += line.count('"')
            open_lines.append(line + "\n")
            if quotes % 2 == 0:
                # Line by line, so the reader's line_num counts the body's lines.
                queue.extend(open_lines)
                open_lines.clear()
                quotes = 0
        self._quotes = quotes
        return self._rows()

    def _rows(self) -> list[Record]:
        out: list[Record] = []
        reader = self._reader
        names = self._names
        while self._lines.queue:
            try:
                row = next(reader)
            except csv.Error as exc:
                self.error = _bad("csv", reader.line_num, str(exc))
                self._lines.queue.clear()
                break
            except StopIteration:
                break
            if not row:
                continue  # a blank line
            if names is None or self._skip_header:
                self._skip_header = False
                if names is None:
                    names = self._names = [n.strip() for n in row]
                    if len(set(names)) != len(names) or not all(names):
                        self.error = _bad(
                            "csv", reader.line_num, "header has empty or repeated names"
                        )
                        break
                continue
            if len(row) != len(names):
                self.error = _bad(
                    "csv",
                    reader.line_num,
                    f"{len(row)} fields where the header has {len(names)}",
                )
                self._lines.queue.clear()
                break
            out.append(dict(zip(names, row, strict=True)))
        return out


# -- a .gz payload -----------------------------------------------------------------------
class _Gunzip:
    """Decompresses a gzip payload (members one after another, as ``gzip`` writes them)
    before the inner decoder; a payload without gzip's magic bytes passes as it is —
    the client already undid a Content-Encoding the server sent along with the type."""

    def __init__(self, inner: Decoder, body_format: str) -> None:
        self._inner = inner
        self._format = body_format
        self._zlib: Any = None
        self._plain = False
        self._head = b""
        self._member_open = False  # the current member has had input and not ended

    def feed(self, chunk: bytes) -> list[Record]:
        if self._zlib is None and not self._plain:
            self._head += chunk
            if len(self._head) < 2:
                return []
            chunk, self._head = self._head, b""
            if chunk[:2] == b"\x1f\x8b":
                self._zlib = zlib.decompressobj(wbits=31)
            else:
                self._plain = True
        if self._plain:
            return self._inner.feed(chunk)
        return self._inner.feed(self._inflate(chunk))

    def _inflate(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            z = self._zlib
            try:
                out.append(z.decompress(chunk))
            except zlib.error as exc:
                raise _bad(self._format, None, f"broken gzip data ({exc})") from None
            self._member_open = True
            if not z.eof:
                break
            chunk = z.unused_data  # the next member, if any
            self._zlib = zlib.decompressobj(wbits=31)
            self._member_open = False
        return b"".join(out)

    def close(self) -> list[Record]:
        out = self._inner.feed(self._head) if self._head else []
        if self._member_open:
            raise _bad(self._format, None, "the gzip data ends early (a cut-off download?)")
        return out + self._inner.close()


def gunzip(inner: Decoder, body_format: str) -> Decoder:
    return _Gunzip(inner, body_format)


def whole_json(records: Expr | None, data: Any) -> list[Record]:
    """A JSON document's records: what ``records`` selects, an object, or a list's items."""
    if records is not None:
        data = records.search(data)
        if data is None:
            raise ResponseError(f"records path {records.source!r} matched nothing")
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        # Every item is checked: a list that starts with objects may still hold others.
        return [r if isinstance(r, dict) else {"value": r} for r in data]
    raise ResponseError(f"expected records (an object or a list), got {type(data).__name__}")
