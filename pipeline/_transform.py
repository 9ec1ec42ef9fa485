"""Record transforms compiled into one generated function per stage.

The built-in operations run in a fixed order — ``compute``, ``coerce``, ``filter``,
``rename``, ``drop``, ``select`` — so a stage reads like a small SELECT. A different
order is two transform stages.

This is the hot path of every pipeline, so each stage's operations are generated as the
body of a single loop (the technique dataclasses and attrs use): no call per operation
per record. Field names, expressions and converters enter the generated code only as
bound arguments, never as source text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._coerce import COERCIONS
from ._expr import Expr, truthy

Record = dict[str, Any]
# A rejected record and the reason, e.g. a value that would not coerce.
Rejection = tuple[Record, str]
BatchOp = Callable[[list[Record]], tuple[list[Record], list[Rejection]]]


class RejectRecord(Exception):
    """Raised by an operation to reject one record without failing the stage."""


def _reject(field: str, value: Any, kind: str) -> RejectRecord:
    return RejectRecord(f"field {field!r}: cannot coerce {value!r} to {kind}")


def compile_ops(
    *,
    compute: dict[str, Expr],
    coerce: dict[str, str],
    filter_: Expr | None,
    rename: dict[str, str],
    drop: list[str],
    select: list[str] | None,
) -> BatchOp | None:
    """One batch function for the built-in operations, or None when there are none."""
    if not (compute or coerce or filter_ or rename or drop or select is not None):
        return None
    bound: dict[str, Any] = {"truthy": truthy, "_reject": _reject}
    body: list[str] = []

    def bind(value: Any) -> str:
        name = f"a{len(bound)}"
        bound[name] = value
        return name

    for field, expr in compute.items():
        body.append(f"r[{bind(field)}] = {bind(expr.search)}(r)")
    for field, kind in coerce.items():
        f, convert, k = bind(field), bind(COERCIONS[kind]), bind(kind)
        body += [
            f"v = r.get({f})",
            "if v is not None:",
            "    try:",
            f"        r[{f}] = {convert}(v)",
            "    except (TypeError, ValueError, OverflowError):",
            f"        rejected.append((r, str(_reject({f}, v, {k}))))",
            "        continue",
        ]
    if filter_ is not None:
        body += [f"if not truthy({bind(filter_.search)}(r)):", "    continue"]
    for old, new in rename.items():
        o = bind(old)
        body += [f"if {o} in r:", f"    r[{bind(new)}] = r.pop({o})"]
    for field in drop:
        body.append(f"r.pop({bind(field)}, None)")
    if select is not None:
        fields = bind(tuple(select))
        body.append(f"append({{f: r[f] for f in {fields} if f in r}})")
    else:
        body.append("append(r)")
    params = ", ".join(f"{name}={name}" for name in bound)
    source = "\n".join(
        [
            "def make(" + ", ".join(bound) + "):",
            f"    def apply(batch, {params}):",
            "        out = []",
            "        rejected = []",
            "        append = out.append",
            "        for r in batch:",
            *(f"            {line}" for line in body),
            "        return out, rejected",
            "    return apply",
        ]
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<podium transform>", "exec"), namespace)
    apply: BatchOp = namespace["make"](**bound)
    return apply
