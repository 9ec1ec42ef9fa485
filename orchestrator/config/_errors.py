"""Validation errors as one line a person can act on: file, key path, what, the fix.

pydantic reports every problem it finds; a user needs the one that explains the others.
A misspelt key makes two errors — an unknown key, and the required key it was meant to
be, missing — and the unknown one is the cause: it is the one reported, with the name it
was probably meant to be. A misspelt ``kind`` or ``type`` is named with the closest
valid value. The tags pydantic adds to a location for tagged unions (``bearer`` in
``auth.bearer.token``) are not keys the user wrote and are left out.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from podium.connectors import PAGINATOR_TYPES
from podium.pipeline import STAGE_KINDS, ConfigError

# Tagged unions whose tag pydantic inserts into locations: (key before it, tags).
_TAGS = {
    "auth": frozenset({"bearer", "basic", "api_key", "oauth2_client_credentials", "cookie_login"}),
    "paginate": frozenset(PAGINATOR_TYPES),
}


def config_error(
    exc: ValidationError, path: Path | str, where: str = "", model: type[BaseModel] | None = None
) -> ConfigError:
    """The most telling validation error as one line: ``file: key.path: what``. With the
    ``model`` that was validated, an unknown key is matched against the keys valid there."""
    errors = exc.errors(include_url=False)
    err = _most_telling(errors)
    loc = key_path(err["loc"])
    key = ".".join(p for p in (where, loc) if p)
    message = _message(err, errors, model)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ConfigError(f"{message}{more}", where=f"{path}: {key}" if key else str(path))


def _most_telling(errors: list[ErrorDetails]) -> ErrorDetails:
    """An unknown key explains a missing one beside it; otherwise pydantic's first."""
    for err in errors:
        if err["type"] == "extra_forbidden":
            return err
    return errors[0]


def _message(err: ErrorDetails, errors: list[ErrorDetails], model: type[BaseModel] | None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(err["loc"][-1])
        # A required key reported missing beside it is the likeliest meaning; else any
        # key the model takes at that place.
        siblings = [
            str(e["loc"][-1])
            for e in errors
            if e["type"] == "missing" and e["loc"][:-1] == err["loc"][:-1]
        ]
        options = siblings or (keys_at(model, err["loc"][:-1]) if model is not None else [])
        return f"unknown key {name!r}{did_you_mean(name, options)}"
    if kind == "missing":
        return f"missing required key {err['loc'][-1]!r}"
    if kind == "stage_kind":
        given = err["input"].get("kind") if isinstance(err["input"], dict) else None
        if given is not None:
            return (
                f"unknown stage kind {given!r}{did_you_mean(str(given), STAGE_KINDS)} "
                f"(kinds: {', '.join(STAGE_KINDS)})"
            )
        return f"needs 'kind': one of {', '.join(STAGE_KINDS)}"
    if kind == "union_tag_invalid":
        ctx: dict[str, Any] = dict(err.get("ctx") or {})
        tag, expected = str(ctx.get("tag")), str(ctx.get("expected_tags", ""))
        options = [t.strip().strip("'") for t in expected.split(",") if t.strip()]
        return f"unknown {ctx.get('discriminator', 'type').strip(chr(39))} {tag!r}" + (
            f"{did_you_mean(tag, options)} (one of: {', '.join(options)})"
        )
    return str(err["msg"]).removeprefix("Value error, ")


def keys_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys valid at ``loc`` inside ``model``, found by walking its field annotations
    (lists by index, tagged unions by the tag pydantic puts in the location)."""
    candidates: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for tp in candidates:
            following.extend(_step(tp, part))
        candidates = following
    names: list[str] = []
    for tp in candidates:
        for sub in _models_in(tp):
            for name, info in sub.model_fields.items():
                names.append(info.alias or name)
    return sorted(set(names))


def _step(tp: Any, part: int | str) -> list[Any]:
    out: list[Any] = []
    for sub in _models_in(tp):
        info = sub.model_fields.get(str(part)) if isinstance(part, str) else None
        if info is None and isinstance(part, str):
            info = next((f for f in sub.model_fields.values() if f.alias == part), None)
        if info is not None:
            out.append(info.annotation)
    for arg in _args(tp):
        origin = get_origin(arg)
        if isinstance(part, int) and origin in (list, tuple):
            out.extend(get_args(arg)[:1])
        elif isinstance(part, str) and origin is dict:
            out.extend(get_args(arg)[1:2])
        elif isinstance(part, str) and isinstance(arg, type) and issubclass(arg, BaseModel):
            tag = arg.model_fields.get("type") or arg.model_fields.get("kind")
            if tag is not None and tag.default == part:
                out.append(arg)  # the union member pydantic named by its tag
    return out


def _args(tp: Any) -> list[Any]:
    """A type with Annotated, Optional and unions taken apart."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _args(get_args(tp)[0])
    if origin in (Union, UnionType):
        return [a for arg in get_args(tp) for a in _args(arg)]
    return [tp]


def _models_in(tp: Any) -> list[type[BaseModel]]:
    return [a for a in _args(tp) if isinstance(a, type) and issubclass(a, BaseModel)]


def did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def key_path(parts: tuple[int | str, ...]) -> str:
    """pydantic's location as the user wrote the key: ``stages[2].records``."""
    out = ""
    previous: int | str | None = None
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(previous, int) and part in STAGE_KINDS:
            pass  # the stage kind tag pydantic inserts after stages[i]
        elif isinstance(previous, str) and part in _TAGS.get(previous, ()):
            pass  # auth.<type> / paginate.<type>
        else:
            out += f".{part}" if out else str(part)
        previous = part
    return out
