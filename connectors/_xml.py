"""XML bodies to records, element by element as the bytes arrive (lxml's pull parser).

lxml, not the stdlib: its ``XMLPullParser`` is fed chunks and hands out each element as
it ends, so a feed of a million items is read in the size of one, and libxml2 can be told
to leave entities alone. The parser is built defused (what defusedxml guards against):

- ``resolve_entities=False`` — no entity is expanded: a "billion laughs" document stays
  a few bytes, and an external entity (``<!ENTITY x SYSTEM "file:///etc/passwd">``, XXE)
  is never read; the reference is dropped from the record;
- ``no_network=True``, ``load_dtd=False`` — nothing is fetched for a DTD;
- ``huge_tree=False`` — libxml2's limits on depth and text size stay on.

Records are the elements at ``records`` — a dotted path of element names from the root,
``"rss.channel.item"`` — or, without one, every child of the root. An element becomes a
record as xmltodict shapes one: attributes as ``@name``, child elements by name (a list
when repeated), text as the value of a leaf, or ``#text`` beside attributes or children.
Names are local: a namespace (``{http://www.w3.org/2005/Atom}entry``) is dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from podium.pipeline import MalformedBody, Record

if TYPE_CHECKING:
    from lxml import etree

_NS_END = "}"


def _local(tag: str) -> str:
    return tag.rpartition(_NS_END)[2] if tag[:1] == "{" else tag


def element_value(element: Any) -> Any:
    """The element as xmltodict would give it: text, or a dict of @attributes, children
    and ``#text`` (None for an empty leaf)."""
    out: dict[str, Any] = {f"@{_local(k)}": v for k, v in element.attrib.items()}
    for child in element:
        if not isinstance(child.tag, str):
            continue  # an unexpanded entity reference, a comment, a processing instruction
        name = _local(child.tag)
        value = element_value(child)
        if name in out:
            existing = out[name]
            if isinstance(existing, list):
                existing.append(value)
            else:
                out[name] = [existing, value]
        else:
            out[name] = value
    text = (element.text or "").strip()
    if not out:
        return text or None
    if text:
        out["#text"] = text
    return out


def _as_record(value: Any) -> Record:
    return value if isinstance(value, dict) else {"value": value}


class XmlDecoder:
    """Feeds chunks to a defused pull parser; each element that ends at the records path
    is turned into a record and cleared, with its finished siblings, to keep memory flat."""

    def __init__(self, path: tuple[str, ...] | None = None) -> None:
        # Imported here: lxml costs ~8 ms, and only a run that reads XML needs it.
        from lxml import etree

        self._syntax_error = etree.XMLSyntaxError
        self._parser = etree.XMLPullParser(
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        # Without a path, the root's children: depth 2 whatever the root is called.
        self._path = path
        self._depth = len(path) if path else 2
        self._stack: list[str] = []
        self.error: MalformedBody | None = None

    def feed(self, chunk: bytes) -> list[Record]:
        if self.error is not None:
            raise self.error
        try:
            self._parser.feed(chunk)
        except self._syntax_error as exc:
            self.error = _broken(exc)
        return self._records()

    def close(self) -> list[Record]:
        if self.error is not None:
            raise self.error
        try:
            self._parser.close()
        except self._syntax_error as exc:
            self.error = _broken(exc)
        out = self._records()
        if self.error is not None:
            raise self.error
        return out

    def _records(self) -> list[Record]:
        out: list[Record] = []
        stack, depth, path = self._stack, self._depth, self._path
        for event, element in self._parser.read_events():
            if event == "start":
                stack.append(_local(str(element.tag)))
                continue
            if len(stack) == depth and (path is None or tuple(stack) == path):
                out.append(_as_record(element_value(element)))
                element.clear(keep_tail=False)
                parent = element.getparent()
                if parent is not None:  # drop the siblings already read
                    while element.getprevious() is not None:
                        del parent[0]
            stack.pop()
        return out


def _broken(exc: etree.XMLSyntaxError) -> MalformedBody:
    line = exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None
    message = str(exc.msg or exc).split(", line ")[0]
    where = f"line {line}" if line is not None else "body"
    return MalformedBody(f"xml {where}: {message}", body_format="xml", line=line)
