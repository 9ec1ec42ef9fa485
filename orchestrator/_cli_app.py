"""The ``podium`` Typer application and what its commands share: exit codes, consoles."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from pipeline import ConfigError, PipelineError, PluginError, PodiumError, RunNotFound

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="podium",
    help="Run API-aggregation pipelines: fetch → transform → check → store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
USAGE_ERRORS = (ConfigError, PipelineError, PluginError, RunNotFound)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="config file", envvar="PODIUM_CONFIG")
]
DEFAULT_CONFIG = Path("config.toml")


def _console(*, stderr: bool = False) -> Console:
    # rich is imported on first use: a --json run never needs it.
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=stderr)


def _err_console() -> Console:
    return _console(stderr=True)


def user_errors(fn: F) -> F:
    """Turn podium errors into one line on stderr and the right exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PodiumError as exc:
            _err_console().print(f"[red]podium: error:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(2 if isinstance(exc, USAGE_ERRORS) else 1) from None
        except KeyboardInterrupt:
            _err_console().print("podium: interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
