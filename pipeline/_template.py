"""``{name}`` templates for paths, query parameters, headers and bodies.

A template is parsed once at load time, so a reference to a field that a stage cannot
provide is found before anything runs, and rendering is a join of pre-split parts.
``{a.b}`` looks up nested values; ``{params.x}`` reads a pipeline parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._errors import PipelineError

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}")
_MISSING = object()


def lookup(values: Mapping[str, Any], dotted: str) -> Any:
    """Return ``values[a][b]`` for ``"a.b"``, or ``_MISSING`` when any step is absent."""
    current: Any = values
    for part in dotted.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


class Template:
    """A string with ``{field}`` holes; a string with none renders to itself at no cost."""

    __slots__ = ("_parts", "fields", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        # Even positions are literal text, odd positions are field names.
        self._parts: list[str] = _FIELD.split(source)
        self.fields: tuple[str, ...] = tuple(self._parts[1::2])

    @property
    def is_static(self) -> bool:
        return not self.fields

    def render(self, values: Mapping[str, Any], quote: Any = str) -> str:
        if not self.fields:
            return self.source
        parts = self._parts
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            value = lookup(values, parts[i])
            if value is _MISSING:
                have = ", ".join(sorted(values)) or "nothing"
                raise PipelineError(
                    f"template {self.source!r} needs {{{parts[i]}}}, "
                    f"which the input does not have (it has: {have})"
                )
            out.append(quote(value))
            out.append(parts[i + 1])
        return "".join(out)

    def render_value(self, values: Mapping[str, Any]) -> Any:
        """Render; a template that is exactly one ``{field}`` keeps the field's type."""
        if len(self._parts) == 3 and not self._parts[0] and not self._parts[2]:
            value = lookup(values, self._parts[1])
            if value is _MISSING:
                return self.render(values)  # raises with the full message
            return value
        return self.render(values)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


class TreeTemplate:
    """Templates inside nested dicts and lists (query parameters, headers, JSON bodies),
    compiled once: rendering walks only the parts that have holes."""

    __slots__ = ("_render", "fields", "is_static", "source")

    def __init__(self, tree: Any) -> None:
        self.source = tree
        self.fields: frozenset[str] = frozenset(tree_fields(tree))
        self.is_static = not self.fields
        self._render = _compile_tree(tree)

    def render(self, values: Mapping[str, Any]) -> Any:
        return self._render(values)

    def __repr__(self) -> str:
        return f"TreeTemplate({self.source!r})"


def _compile_tree(tree: Any) -> Any:
    if not tree_fields(tree):
        # No holes: every render returns the same value (callers never mutate it).
        return lambda _values: tree
    if isinstance(tree, str):
        return Template(tree).render_value
    if isinstance(tree, dict):
        parts = [(key, _compile_tree(value)) for key, value in tree.items()]
        return lambda values: {key: render(values) for key, render in parts}
    items = [_compile_tree(value) for value in tree]
    return lambda values: [render(values) for render in items]


def render_tree(tree: Any, values: Mapping[str, Any]) -> Any:
    """Render every string inside nested dicts and lists, compiling as it goes (use
    ``TreeTemplate`` for a tree rendered more than once)."""
    return TreeTemplate(tree).render(values)


def tree_fields(tree: Any) -> set[str]:
    """All ``{field}`` names used anywhere inside nested dicts and lists."""
    if isinstance(tree, str):
        return set(Template(tree).fields)
    if isinstance(tree, dict):
        return set().union(*(tree_fields(v) for v in tree.values()))
    if isinstance(tree, list):
        return set().union(*(tree_fields(v) for v in tree))
    return set()
