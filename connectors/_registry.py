"""Finding connector classes by kind: built-ins, then installed plugins, then import paths.

Third-party packages register under the entry-point group ``podium.connectors``:

    [project.entry-points."podium.connectors"]
    weatherapi = "podium_weatherapi:WeatherApiConnector"

A plugin that fails to load is reported for the kind that needs it, and only then, so a
broken package never breaks pipelines that do not use it.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from pipeline import PluginError, import_ref

from ._base import Connector
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
    raise PluginError(f"unknown connector kind {kind!r} (known: {', '.join(known_kinds())})")


def _checked(cls: object, kind: str) -> type[Connector]:
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise PluginError(f"connector kind {kind!r} is not a podium Connector subclass")
    return cls
