"""``expr:`` formulas: arithmetic, comparisons and podium's functions over one record.

JMESPath selects and tests data but has no arithmetic (``value * 2`` is a parse error).
The alternatives weighed (2026-12):

- ``jmespath-community`` adds JEP-19 arithmetic, but installs under the same import name
  as ``jmespath`` (one would overwrite the other's files), still needs numbers quoted
  (``value * `2```), and has had no release since 2023;
- ``asteval`` is a whole Python interpreter (loops, function definitions): far more
  than a config value should be able to say;
- ``simpleeval`` (maintained, widely used) evaluates one Python expression over a
  table of operators and functions, with guarded operators (no huge powers or string
  repetitions). podium uses it, narrowed further: the expression is checked against a
  short list of syntax at load time (no lambdas, comprehensions, f-strings, keyword
  arguments or attribute access to anything but a record's keys), names are the
  record's fields (a missing one is null), ``a.b`` is always a key lookup (never a
  Python attribute), and only podium's functions can be called. Nothing is ever
  ``eval``-ed.

A formula is read only with the ``expr:`` prefix, so every JMESPath expression keeps its
meaning and a JMESPath typo stays an error instead of becoming arithmetic (``foo-bar``
would be ``foo`` minus ``bar``). A formula whose operands do not fit (``null * 2``, a
division by zero) gives null, as a JMESPath path that matches nothing does.

Measured (bench/expr_bench.py, bench/RESULTS.md): a formula costs a few microseconds
per record, about JMESPath's own cost for a non-trivial expression; plain field paths
keep Expr's dict-walk shortcut.
"""

from __future__ import annotations

import ast
import keyword
import re
from datetime import datetime, timedelta
from typing import Any

from simpleeval import (
    DEFAULT_OPERATORS,
    FeatureNotAvailable,
    InvalidExpression,
    SimpleEval,
)

from ._errors import PipelineError
from ._functions import FORMULA_FUNCTIONS, iso

PREFIX = "expr:"

_OPERATORS = {
    op: DEFAULT_OPERATORS[op]
    for op in (
        ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
        ast.Eq, ast.NotEq, ast.Gt, ast.Lt, ast.GtE, ast.LtE,
        ast.Not, ast.USub, ast.UAdd, ast.In, ast.NotIn,
    )
}  # fmt: skip
_SYNTAX = (
    ast.Expression, ast.Name, ast.Load, ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp,
    ast.Compare, ast.IfExp, ast.Call, ast.Attribute, ast.Subscript, ast.Slice,
    ast.And, ast.Or, *_OPERATORS,
)  # fmt: skip
# Operands that do not fit give null, as in JMESPath; anything else is a bug to see.
_UNFIT = (TypeError, ValueError, ArithmeticError, KeyError, IndexError, InvalidExpression)


class _Evaluator(SimpleEval):  # type: ignore[misc]
    """simpleeval narrowed to the syntax ``_parse`` lets through: names are the data's
    fields (a missing one is null) and ``a.b`` is a key lookup, never a Python attribute
    (``items.count`` is the field ``count``, not the list method)."""

    def __init__(self) -> None:
        super().__init__(operators=_OPERATORS, functions=FORMULA_FUNCTIONS, names={})
        allowed = (
            ast.Name, ast.Attribute, ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp,
            ast.Compare, ast.IfExp, ast.Call, ast.Subscript, ast.Slice,
        )  # fmt: skip
        handlers: dict[type, Any] = getattr(self, "nodes")  # noqa: B009 (set by SimpleEval)
        self.nodes = {kind: handlers[kind] for kind in allowed}

    def _eval_name(self, node: ast.Name) -> Any:
        data = self.names
        return data.get(node.id) if isinstance(data, dict) else None

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        value = self._eval(node.value)
        return value.get(node.attr) if isinstance(value, dict) else None


class Formula:
    """A compiled ``expr:`` formula; ``search(data)`` evaluates it over ``data``."""

    __slots__ = ("_evaluator", "_text", "_tree", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._text = source.strip().removeprefix(PREFIX).strip()
        self._tree = _parse(source, self._text).body
        self._evaluator = _Evaluator()

    def search(self, data: Any) -> Any:
        # Evaluation is synchronous: the evaluator's names are this call's data alone
        # (podium evaluates on the event loop's thread, one expression at a time).
        evaluator = self._evaluator
        evaluator.names = data
        try:
            return _json(evaluator.eval(self._text, previously_parsed=self._tree))
        except _UNFIT:
            return None
        except FeatureNotAvailable as exc:  # the load-time check should have refused it
            raise PipelineError(f"expression {self.source!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"Formula({self.source!r})"


def _parse(source: str, text: str) -> ast.Expression:
    if not text:
        raise PipelineError(f"expression {source!r} is empty after {PREFIX!r}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        at = f" at character {exc.offset}" if exc.offset else ""
        raise PipelineError(
            f"invalid expression {source!r}: {exc.msg}{at}{_keyword_hint(text)}"
        ) from None
    nodes = list(ast.walk(tree))
    for node in nodes:
        if not isinstance(node, _SYNTAX):
            raise PipelineError(f"expression {source!r}: {_refused(node)}")
    for node in nodes:
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in FORMULA_FUNCTIONS or node.keywords:
                called = name or ast.unparse(node.func)
                functions = ", ".join(FORMULA_FUNCTIONS)
                raise PipelineError(
                    f"expression {source!r} calls {called!r}; it may call only "
                    f"{functions} (with plain arguments)"
                )
        if isinstance(node, ast.Attribute | ast.Name):
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            if name.startswith("_"):
                raise PipelineError(
                    f"expression {source!r} reads {name!r}: field names starting with '_' "
                    "are refused in formulas (write a JMESPath expression to read them)"
                )
    return tree


def _refused(node: ast.AST) -> str:
    kinds = {
        ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension",
        ast.GeneratorExp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.JoinedStr: "an f-string",
        ast.NamedExpr: "an assignment",
        ast.Await: "await",
    }
    what = next((v for k, v in kinds.items() if isinstance(node, k)), type(node).__name__)
    return (
        f"{what} is not allowed (formulas have arithmetic, comparisons, and/or/not, "
        "x if c else y, [index] and podium's functions)"
    )


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


# The keywords a formula may use; any other is a field name Python cannot parse.
_FORMULA_KEYWORDS = frozenset({"and", "or", "not", "if", "else", "None", "True", "False"})


def _keyword_hint(text: str) -> str:
    """A field named like a Python keyword (``from``, ``class``) cannot be named in a
    formula: say so, and how to reach it, instead of leaving "invalid syntax" alone."""
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)
    taken = next((w for w in words if keyword.iskeyword(w) and w not in _FORMULA_KEYWORDS), None)
    if taken is None:
        return ""
    return (
        f" ({taken!r} is a Python keyword, so a field of that name cannot be named in a "
        f"formula: copy it with JMESPath first, compute.{taken}_ = '\"{taken}\"', and use "
        f"{taken}_)"
    )
