"""``${VAR}`` and ``${VAR:-default}`` in config values, resolved from the environment.

``$${`` writes a literal ``${``. A missing variable is an error that names the variable
and the key that uses it, never a silent empty string.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from podium.pipeline import ConfigError

_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# A "${" that the reference pattern above cannot finish: unclosed, or not a name.
_BROKEN = re.compile(r"\$\$\{|\$\{")


# Keys whose values locate things rather than unlock them: what the environment puts
# there stays readable in logs. Every other value taken from the environment is masked.
_PLAIN_KEYS = frozenset(
    {"kind", "base_url", "url", "token_url", "login_url", "host", "port", "path",
     "node_id", "timezone", "table", "connector", "description"}
)  # fmt: skip


# Alert destinations are URLs whose path or user part is often the credential itself
# (slack://T0/B0/XyZ, a webhook's secret path): nothing there is plain.
ALERT_PLAIN_KEYS = frozenset({"description", "timezone"})


class UnsetAsPlaceholder(Mapping[str, str]):
    """The process environment, where a ``${VAR}`` that is not set and has no default reads
    as ``placeholder`` instead of being an error (a replay from cassettes needs none)."""

    def __init__(self, placeholder: str = "podium-replay-unset") -> None:
        self.placeholder = placeholder

    def __getitem__(self, name: str) -> str:
        return os.environ[name]

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


def interpolate(
    value: Any,
    env: Mapping[str, str],
    where: str,
    secrets: set[str] | None = None,
    plain: frozenset[str] = _PLAIN_KEYS,
) -> Any:
    """Resolve references in every string inside ``value`` (dicts and lists included).

    Values read from the environment are added to ``secrets`` (when given), so whatever
    a run logs or records can be masked — unless they sit under a key in ``plain``.
    """
    if isinstance(value, str):
        if "${" not in value:
            return value
        key = where.rsplit(".", 1)[-1].split("[", 1)[0]
        return _resolve(value, env, where, None if key in plain else secrets)
    if isinstance(value, dict):
        return {
            k: interpolate(v, env, f"{where}.{k}" if where else k, secrets, plain)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, env, f"{where}[{i}]", secrets, plain) for i, v in enumerate(value)]
    return value


def _resolve(text: str, env: Mapping[str, str], where: str, secrets: set[str] | None) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name in env:
            if secrets is not None:
                secrets.add(env[name])
            return env[name]
        if default is not None:
            return default
        if isinstance(env, UnsetAsPlaceholder):
            return env.placeholder
        raise ConfigError(
            f"environment variable {name} is not set (write ${{{name}:-default}} for a default)",
            where=where,
        )

    # What is left once every well-formed reference is taken out; escapes stay escapes.
    leftover = _REF.sub(lambda m: m.group(0) if m.group(0) == "$${" else "", text)
    for match in _BROKEN.finditer(leftover):
        if match.group(0) == "${":
            raise ConfigError(
                "a ${ is not closed or holds no variable name (write ${NAME}, or $${ for a "
                "literal ${)",
                where=where,
            )
    return _REF.sub(substitute, text)
