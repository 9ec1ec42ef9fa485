"""JMESPath expressions: compiled once, with load-time errors that name the expression.

JMESPath is the only expression language podium evaluates: it selects and tests data and
cannot run code, so a config file can never execute anything through it.
"""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from ._errors import PipelineError


class Expr:
    """A compiled JMESPath expression."""

    __slots__ = ("_parsed", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._parsed: ParsedResult = jmespath.compile(source)
        except JMESPathError as exc:
            first = str(exc).splitlines()[0]
            raise PipelineError(f"invalid JMESPath expression {source!r}: {first}") from None

    def search(self, data: Any) -> Any:
        return self._parsed.search(data)

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"


def truthy(value: Any) -> bool:
    """JMESPath's notion of truth: false, null, empty string/list/object are false."""
    return not (value is None or value is False or value == "" or value == [] or value == {})
