"""Which database a URL names, decided without importing a database library.

Loading a config only validates the URL; the storage layer opens it. Keeping this check
free of SQLAlchemy keeps ``podium validate`` and ``podium --help`` from paying its import.
"""

from __future__ import annotations

from typing import Literal

from podium.pipeline import ConfigError

SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"})
POSTGRES_SCHEMES = frozenset(
    {"postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg2", "postgresql+psycopg"}
)


def database_kind(url: str) -> Literal["sqlite", "postgresql"]:
    """``"sqlite"`` or ``"postgresql"`` for a supported URL; a ConfigError otherwise."""
    if any(not ch.isprintable() for ch in url):
        raise ConfigError(
            "the database URL holds a control character (a NUL, a line break)",
            where="database.url",
        )
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ConfigError(
            f"not a database URL: {url!r} (e.g. sqlite:///podium.db or postgresql://user@host/db)",
            where="database.url",
        )
    scheme = scheme.lower()
    if scheme in SQLITE_SCHEMES:
        if not rest.startswith("/"):
            raise ConfigError(
                f"a SQLite URL has three slashes before a relative path: sqlite:///{rest}",
                where="database.url",
            )
        return "sqlite"
    if scheme in POSTGRES_SCHEMES:
        return "postgresql"
    raise ConfigError(
        f"unsupported database {scheme!r} (use sqlite:/// or postgresql://)", where="database.url"
    )
