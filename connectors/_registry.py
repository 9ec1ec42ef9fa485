"""Finding connector classes by kind: built-ins, then installed plugins, then import paths.

Third-party packages register under the entry-point group ``podium.connectors``:

    [project.entry-points."podium.connectors"]
    weatherapi = "podium_weatherapi:WeatherApiConnector"

A plugin that fails to load is reported for the kind that needs it, and only then, so a
broken package never breaks pipelines that do not use it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, version
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from podium.pipeline import PluginError, import_ref

from ._auth import AUTH_MODELS
from ._base import Connector, ConnectorConfig, RedirectPolicy, RetryPolicy, TlsConfig
from ._http import HttpConnector

ENTRY_POINT_GROUP = "podium.connectors"
BUILTINS: dict[str, type[Connector]] = {HttpConnector.kind: HttpConnector}


def plugin_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_kinds() -> list[str]:
    return sorted({*BUILTINS, *plugin_entry_points()})


def connector_class(kind: str) -> type[Connector]:
    """The class for ``kind``: a built-in name, an entry-point name, or ``module:Class``."""
    if kind in BUILTINS:
        return BUILTINS[kind]
    plugins = plugin_entry_points()
    if kind in plugins:
        ep = plugins[kind]
        try:
            cls = ep.load()
        except Exception as exc:  # a plugin's import may raise anything
            raise PluginError(
                f"connector plugin {kind!r} ({ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        return _checked(cls, kind)
    if ":" in kind:
        try:
            return _checked(import_ref(kind), kind)
        except ValueError as exc:
            raise PluginError(f"connector kind {kind!r}: {exc}") from None
    known = known_kinds()
    close = difflib.get_close_matches(kind, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise PluginError(f"unknown connector kind {kind!r}{hint} (known: {', '.join(known)})")


def _checked(cls: object, kind: str) -> type[Connector]:
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise PluginError(f"connector kind {kind!r} is not a podium Connector subclass")
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, ConnectorConfig)):
        raise PluginError(
            f"connector kind {kind!r}: {cls.__qualname__}.Config must subclass ConnectorConfig"
        )
    return cls


@dataclass(frozen=True)
class KindInfo:
    """What ``podium connectors`` shows about one installed kind."""

    kind: str
    package: str
    version: str
    # The kind's own config keys, beyond those every connector has (COMMON_FIELDS).
    fields: tuple[str, ...]
    error: str | None = None


COMMON_FIELDS = tuple(name for name in ConnectorConfig.model_fields if name != "kind")


def describe_kinds() -> list[KindInfo]:
    """Every installed kind, built-ins first; a plugin that fails to load says why."""
    infos: list[KindInfo] = []
    podium_version = _version("podium")
    for kind, cls in BUILTINS.items():
        infos.append(KindInfo(kind, "podium", podium_version, _own_fields(cls)))
    for kind, ep in sorted(plugin_entry_points().items()):
        if kind in BUILTINS:
            continue  # a built-in always wins over a plugin of the same name
        package = ep.dist.name if ep.dist is not None else ep.module
        pkg_version = ep.dist.version if ep.dist is not None else "?"
        try:
            cls = connector_class(kind)
        except PluginError as exc:
            infos.append(KindInfo(kind, package, pkg_version, (), exc.message))
            continue
        infos.append(KindInfo(kind, package, pkg_version, _own_fields(cls)))
    return infos


def _own_fields(cls: type[Connector]) -> tuple[str, ...]:
    return describe_fields(cls.Config, skip=set(ConnectorConfig.model_fields))


def describe_fields(
    model: type[BaseModel], *, skip: frozenset[str] | set[str] = frozenset()
) -> tuple[str, ...]:
    """Every key a model takes, as ``name (required)`` or ``name = default``."""
    out = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        if name in skip or key in ("type", "kind"):
            continue
        if info.is_required():
            out.append(f"{key} (required)")
        elif info.default is PydanticUndefined:
            factory = info.default_factory
            empty = factory() if factory is not None else None  # type: ignore[call-arg]
            out.append(f"{key} = {_shown(empty)}" if empty is not None else key)
        else:
            out.append(f"{key} = {_shown(info.default)}")
    return tuple(out)


def _shown(value: Any) -> str:
    if isinstance(value, BaseModel):
        return "{…}"
    if isinstance(value, frozenset | set):
        return "[" + ", ".join(str(v) for v in sorted(value)) + "]"
    return repr(value)


def settings_catalog() -> list[tuple[str, tuple[str, ...]]]:
    """The tables every connector takes, each with all its keys: what ``podium
    connectors`` lists under the kinds, read from the models so it never goes stale."""
    rows: list[tuple[str, tuple[str, ...]]] = [
        ("retry", describe_fields(RetryPolicy)),
        ("redirects", describe_fields(RedirectPolicy)),
        ("tls", describe_fields(TlsConfig)),
    ]
    for auth in AUTH_MODELS:
        tag = auth.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
        rows.append((f'auth, type = "{tag}"', describe_fields(auth)))
    return rows


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"
