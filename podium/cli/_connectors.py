"""``podium connectors``: list the installed connector kinds, or start a plugin package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app, console, user_errors

connectors_app = typer.Typer(
    help="Connector kinds: list what is installed, or start a new plugin package.",
    add_completion=False,
)
app.add_typer(connectors_app, name="connectors")


@connectors_app.callback(invoke_without_command=True)
def connectors_main(ctx: typer.Context) -> None:
    """List the installed connector kinds (the default), or start a plugin with `new`."""
    if ctx.invoked_subcommand is None:
        list_connectors()


@connectors_app.command("list")
@user_errors
def list_connectors() -> None:
    """List the connector kinds installed: kind, package, version and config fields."""
    from rich.table import Table
    from rich.text import Text

    from podium.connectors import COMMON_FIELDS, describe_kinds, settings_catalog

    table = Table(
        title="connector kinds",
        title_justify="left",
        caption=Text(f"every kind also takes: {', '.join(COMMON_FIELDS)}"),
        caption_justify="left",
    )
    for column in ("kind", "package", "version", "config fields"):
        table.add_column(column, overflow="fold")
    for info in describe_kinds():
        if info.error is not None:
            fields = Text(f"broken: {info.error}", style="red")
        else:
            fields = Text(", ".join(info.fields) or "-")
        table.add_row(Text(info.kind), Text(info.package), Text(info.version), fields)
    settings = Table(
        title="settings every kind takes (see docs/connectors.md)",
        title_justify="left",
        show_header=False,
    )
    settings.add_column("table", no_wrap=True)
    settings.add_column("keys", overflow="fold")
    for name, keys in settings_catalog():
        settings.add_row(Text(name), Text(", ".join(keys)))
    out = console()
    out.print(table)
    out.print(settings)


@connectors_app.command("new")
@user_errors
def new_connector(
    name: Annotated[str, typer.Argument(help="the connector kind, e.g. weather-api")],
    directory: Annotated[
        Path, typer.Option("--dir", "-d", help="where to create the package folder")
    ] = Path("."),
) -> None:
    """Write a connector plugin package: pyproject with the entry point, module, test."""
    from ._scaffold import write_skeleton

    root = write_skeleton(name, directory)
    typer.echo(f"created {root}")
    typer.echo(f"next: pip install -e '{root}[test]' && python -m pytest {root}")
