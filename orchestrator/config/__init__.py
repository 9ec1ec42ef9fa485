"""Loading ``config.toml``: parse, interpolate ``${ENV}``, validate, compile."""

from ._interpolate import interpolate
from ._load import DEFAULT_DATABASE_URL, Config, DatabaseConfig, LimitsConfig, load_config

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Config",
    "DatabaseConfig",
    "LimitsConfig",
    "interpolate",
    "load_config",
]
