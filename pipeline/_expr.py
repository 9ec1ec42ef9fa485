"""Expressions: compiled once, with load-time errors that name the expression.

An expression is JMESPath, with podium's functions added (``lower``, ``concat``,
``now``, ``date_add``, … in ``_functions``), or, with the ``expr:`` prefix, a formula
with arithmetic (``expr: value * 2``, ``expr: now() - duration('2h')``; see
``_formula``). Neither can run code: JMESPath selects and tests data, and a formula is
checked against a short list of syntax and evaluated by simpleeval, never ``eval``.
"""

from __future__ import annotations

import difflib
import re
from functools import partial
from typing import Any

import jmespath
from jmespath.exceptions import IncompleteExpressionError, JMESPathError
from jmespath.parser import ParsedResult

from ._errors import PipelineError
from ._formula import PREFIX, Formula
from ._functions import JMESPathFunctions

_SIMPLE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# One function table for every search: jmespath builds its default one on each call
# without options, so passing ours costs nothing extra.
_OPTIONS = jmespath.Options(custom_functions=JMESPathFunctions())


class Expr:
    """A compiled expression: JMESPath, or an ``expr:`` formula."""

    __slots__ = ("_parsed", "_path", "search", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        if source.lstrip().startswith(PREFIX):
            self.search: Any = Formula(source).search
            return
        try:
            self._parsed: ParsedResult = jmespath.compile(source)
        except JMESPathError as exc:
            raise PipelineError(
                f"invalid JMESPath expression {source!r}: {_problem(exc)}{_hint(source)}"
            ) from None
        _check_calls(source, self._parsed.parsed)
        # Plain field paths (``items``, ``data.current.temp``) are most expressions in
        # practice; walking dicts directly gives JMESPath's answer at a tenth of the cost.
        if _SIMPLE_PATH.fullmatch(source):
            self._path = tuple(source.split("."))
            self.search = self._search_path
        else:
            self.search = partial(self._parsed.search, options=_OPTIONS)

    def _search_path(self, data: Any) -> Any:
        for key in self._path:
            if not isinstance(data, dict):
                return None
            data = data.get(key)
        return data

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"


def _hint(source: str) -> str:
    """Arithmetic written as JMESPath (``value * 2``): say how to write it."""
    try:
        Formula(PREFIX + source)
    except PipelineError:
        return ""
    return f"; for arithmetic, write it as a formula: {PREFIX + ' ' + source!r}"


def _check_calls(source: str, node: dict[str, Any]) -> None:
    """jmespath finds an unknown function or a wrong argument count only when it runs;
    podium finds them at load time, with the functions there are."""
    if node.get("type") == "function_expression":
        name = node["value"]
        table = _OPTIONS.custom_functions.FUNCTION_TABLE
        if name not in table:
            close = difflib.get_close_matches(name, table, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PipelineError(
                f"expression {source!r} calls unknown function {name!r}{hint}; there are "
                f"{', '.join(sorted(table))}"
            )
        signature = table[name]["signature"]
        given = len(node["children"])
        variadic = bool(signature) and signature[-1].get("variadic")
        if given < len(signature) or (given > len(signature) and not variadic):
            wanted = f"at least {len(signature)}" if variadic else str(len(signature))
            raise PipelineError(
                f"expression {source!r}: {name}() takes {wanted} argument(s), got {given}"
            )
    for child in node.get("children", ()):
        if isinstance(child, dict):
            _check_calls(source, child)


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
