"""The ``podium`` Typer application and what its commands share: exit codes, consoles.

Every command module imports only this, typer and the standard library at module level;
the stack each command needs is imported inside the command, so ``podium --help`` pays
for none of it.

Text that comes from data, configs or errors is never read as Rich markup: ``error`` and
``plain`` print it escaped, and tables get it as ``Text`` cells (see ``_display``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="podium",
    help="Run API-aggregation pipelines: fetch → transform → check → store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: Rich formatting would cost more start-up than the rest of --help.
    rich_markup_mode=None,
)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="config file", envvar="PODIUM_CONFIG")
]
DEFAULT_CONFIG = Path("config.toml")
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def console(*, stderr: bool = False) -> Console:
    # rich is imported on first use: a --json run never needs it.
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=stderr, highlight=False)


def error(message: str, *, prefix: str = "podium: error:") -> None:
    """One line on stderr; ``message`` is escaped, never read as markup, and a character
    that would break the line (a name holding a newline) is shown as its escape."""
    from rich.markup import escape

    line = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
    console(stderr=True).print(f"[red]{escape(prefix)}[/red] {escape(line)}")


def plain(text: str, *, stderr: bool = False, style: str | None = None) -> None:
    """Print ``text`` exactly as it is (no markup, no highlighting)."""
    from rich.text import Text

    console(stderr=stderr).print(Text(text, style=style or ""))


def user_errors(fn: F) -> F:
    """Turn podium errors into one line on stderr and the right exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from podium.pipeline import (
            ConfigError,
            PipelineError,
            PluginError,
            PodiumError,
            ResumeRefused,
            RunNotFound,
        )

        try:
            return fn(*args, **kwargs)
        except (PodiumError, BaseExceptionGroup) as exc:
            found = first_podium_error(exc)
            if found is None:
                raise
            error(str(found))
            usage = isinstance(
                found, ConfigError | PipelineError | PluginError | RunNotFound | ResumeRefused
            )
            raise typer.Exit(EXIT_USAGE if usage else EXIT_FAILED) from None
        except KeyboardInterrupt:
            plain("podium: interrupted", stderr=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def first_podium_error(exc: BaseException) -> Exception | None:
    """The podium error inside (possibly nested) exception groups, or None."""
    from podium.pipeline import PodiumError

    if isinstance(exc, PodiumError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_podium_error(inner)
            if found is not None:
                return found
    return None
