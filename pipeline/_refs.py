"""``module:attr`` references to user code (transform callables, SQLModel table classes)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo


def import_ref(ref: str, base: Path | None = None) -> Any:
    """Import ``package.module:attr.sub``; raise ValueError naming what failed and why.

    A module that sits in ``base`` (a config file's folder) is imported from there, as
    the config's author meant; any other is imported from the installed packages.
    """
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"expected 'module:name', got {ref!r}")
    try:
        with _beside(base, module_name.split(".", 1)[0]):
            target: Any = importlib.import_module(module_name)
    except Exception as exc:  # a user's module may raise anything while importing
        raise ValueError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    return target


@contextmanager
def _beside(base: Path | None, top: str) -> Iterator[None]:
    """Put ``base`` first on the import path for the time of one import, when the module's
    top-level package is a file or folder there — and only then, so nothing else a config
    folder holds (a stray ``json.py``) can shadow an installed module."""
    if base is None or not (
        (base / f"{top}.py").is_file() or (base / top / "__init__.py").is_file()
    ):
        yield
        return
    entry = str(base)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)


def ref_name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _base(info: ValidationInfo) -> Path | None:
    """The config file's folder, passed as validation context by the config loader."""
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir")
    return base if isinstance(base, Path) else None


def _callable(value: Any, info: ValidationInfo) -> Callable[..., Any]:
    target = import_ref(value, _base(info)) if isinstance(value, str) else value
    if not callable(target):
        raise ValueError(f"{value!r} is not callable")
    fn: Callable[..., Any] = target
    return fn


def _class(value: Any, info: ValidationInfo) -> type:
    target = import_ref(value, _base(info)) if isinstance(value, str) else value
    if not isinstance(target, type):
        raise ValueError(f"{value!r} is not a class")
    return target


CallableRef = Annotated[
    Callable[..., Any], BeforeValidator(_callable), PlainSerializer(ref_name, return_type=str)
]
ClassRef = Annotated[type, BeforeValidator(_class), PlainSerializer(ref_name, return_type=str)]
