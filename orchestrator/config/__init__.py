"""Loading ``config.toml``: parse, interpolate ``${ENV}``, validate, compile."""

from ._errors import config_error, did_you_mean
from ._interpolate import UnsetAsPlaceholder, interpolate
from ._load import (
    DEFAULT_DATABASE_URL,
    Config,
    DatabaseConfig,
    JournalConfig,
    LimitsConfig,
    load_config,
    read_toml,
)

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Config",
    "DatabaseConfig",
    "JournalConfig",
    "LimitsConfig",
    "UnsetAsPlaceholder",
    "config_error",
    "did_you_mean",
    "interpolate",
    "load_config",
    "read_toml",
]
