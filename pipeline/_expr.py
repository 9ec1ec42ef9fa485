"""JMESPath expressions: compiled once, with load-time errors that name the expression.

JMESPath is the only expression language podium evaluates: it selects and tests data and
cannot run code, so a config file can never execute anything through it.
"""

from __future__ import annotations

import re
from typing import Any

import jmespath
from jmespath.exceptions import IncompleteExpressionError, JMESPathError
from jmespath.parser import ParsedResult

from ._errors import PipelineError

_SIMPLE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class Expr:
    """A compiled JMESPath expression."""

    __slots__ = ("_parsed", "_path", "search", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._parsed: ParsedResult = jmespath.compile(source)
        except JMESPathError as exc:
            raise PipelineError(
                f"invalid JMESPath expression {source!r}: {_problem(exc)}"
            ) from None
        # Plain field paths (``items``, ``data.current.temp``) are most expressions in
        # practice; walking dicts directly gives JMESPath's answer at a tenth of the cost.
        if _SIMPLE_PATH.fullmatch(source):
            self._path = tuple(source.split("."))
            self.search = self._search_path
        else:
            self.search = self._parsed.search

    def _search_path(self, data: Any) -> Any:
        for key in self._path:
            if not isinstance(data, dict):
                return None
            data = data.get(key)
        return data

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"


def _problem(exc: JMESPathError) -> str:
    """jmespath's error as one line: what is wrong and at which character (its own text
    spans three lines, with a caret, and says "Incomplete expression:" and no more)."""
    where = getattr(exc, "lex_position", None)
    at = f" at character {where + 1}" if isinstance(where, int) else ""
    if isinstance(exc, IncompleteExpressionError):
        return f"the expression ends too early{at} (an unclosed bracket or a missing operand?)"
    message = getattr(exc, "message", None) or getattr(exc, "msg", None) or str(exc)
    message = str(message).splitlines()[0].rstrip(":")
    return f"{message[:1].lower()}{message[1:]}{at}"


def truthy(value: Any) -> bool:
    """JMESPath's notion of truth: false, null, empty string/list/object are false."""
    return not (value is None or value is False or value == "" or value == [] or value == {})
