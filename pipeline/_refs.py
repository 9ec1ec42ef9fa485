"""``module:attr`` references to user code (transform callables, SQLModel table classes)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer


def import_ref(ref: str) -> Any:
    """Import ``package.module:attr.sub``; raise ValueError naming what failed and why."""
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"expected 'module:name', got {ref!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # a user's module may raise anything while importing
        raise ValueError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    return target


def ref_name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _callable(value: Any) -> Callable[..., Any]:
    target = import_ref(value) if isinstance(value, str) else value
    if not callable(target):
        raise ValueError(f"{value!r} is not callable")
    fn: Callable[..., Any] = target
    return fn


def _class(value: Any) -> type:
    target = import_ref(value) if isinstance(value, str) else value
    if not isinstance(target, type):
        raise ValueError(f"{value!r} is not a class")
    return target


CallableRef = Annotated[
    Callable[..., Any], BeforeValidator(_callable), PlainSerializer(ref_name, return_type=str)
]
ClassRef = Annotated[type, BeforeValidator(_class), PlainSerializer(ref_name, return_type=str)]
