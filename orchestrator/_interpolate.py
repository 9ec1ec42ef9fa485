"""``${VAR}`` and ``${VAR:-default}`` in config values, resolved from the environment.

``$${`` writes a literal ``${``. A missing variable is an error that names the variable
and the key that uses it, never a silent empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline import ConfigError

_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str], where: str) -> Any:
    """Resolve references in every string inside ``value`` (dicts and lists included)."""
    if isinstance(value, str):
        return _resolve(value, env, where) if "${" in value else value
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _resolve(text: str, env: Mapping[str, str], where: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} is not set (write ${{{name}:-default}} for a default)",
            where=where,
        )

    return _REF.sub(substitute, text)
