"""``podium state show|set|reset PIPELINE``: a pipeline's durable values — incremental
marks, one per partition — as the journal keeps them."""

from __future__ import annotations

import sys
from datetime import UTC
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import DEFAULT_CONFIG, EXIT_USAGE, ConfigOption, app, console, error, plain, user_errors

if TYPE_CHECKING:
    from podium.orchestrator import Config

state_app = typer.Typer(
    help="A pipeline's stored state: incremental marks per partition.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(state_app, name="state")


def _journal(loaded: Config, method: str, *args: Any) -> Any:
    import functools

    import anyio

    async def go() -> Any:
        from podium.orchestrator import Journal, open_database

        async with open_database(loaded.database.url) as db:
            return await getattr(Journal(db), method)(*args)

    return anyio.run(functools.partial(go), backend="asyncio")


def _loaded(config: Any, pipeline: str) -> Config:
    from podium.orchestrator import load_config

    loaded = load_config(config)
    loaded.pipeline(pipeline)  # a misspelt name is an error, not an empty list
    return loaded


@state_app.command()
@user_errors
def show(
    pipeline: Annotated[str, typer.Argument(help="the pipeline")],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """List the pipeline's stored values (incremental marks: incremental:STAGE[:PARTITION])."""
    loaded = _loaded(config, pipeline)
    rows = _journal(loaded, "all_state", pipeline)
    if as_json:
        import orjson

        data = [{"key": r["key"], "value": r["value"], "updated_at": r["updated_at"].isoformat()}
                for r in rows]  # fmt: skip
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not rows:
        plain(f"{pipeline} has no stored state (its next run starts from the beginning)")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{pipeline} · state", title_justify="left")
    for column in ("key", "value", "updated"):
        table.add_column(column, overflow="fold")
    for row in rows:
        updated = row["updated_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        table.add_row(Text(row["key"]), Text(repr(row["value"])), Text(updated))
    console().print(table)


@state_app.command("set")
@user_errors
def set_(
    pipeline: Annotated[str, typer.Argument(help="the pipeline")],
    key: Annotated[str, typer.Argument(help="the key, as `podium state show` lists it")],
    value: Annotated[
        str, typer.Argument(help="the value: JSON (a number stays a number), else text")
    ],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Set a stored value — backwards too: the next run fetches from there."""
    import orjson

    loaded = _loaded(config, pipeline)
    if not key.startswith("incremental:"):
        error(
            f"key {key!r}: podium keeps incremental:STAGE[:PARTITION] keys (see: podium state show)"
        )
        raise typer.Exit(EXIT_USAGE)
    try:
        parsed: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        parsed = value
    problem = _not_a_mark(loaded, pipeline, key, parsed)
    if problem is not None:
        error(problem)
        raise typer.Exit(EXIT_USAGE)
    _journal(loaded, "set_state", pipeline, key, parsed)
    plain(f"{pipeline}: {key} = {parsed!r}")


@state_app.command()
@user_errors
def reset(
    pipeline: Annotated[str, typer.Argument(help="the pipeline")],
    key: Annotated[
        str | None, typer.Argument(help="only this key and its partitions (default: all)")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Forget stored values: the next run fetches everything again."""
    loaded = _loaded(config, pipeline)
    what = f"{key} (and its partitions)" if key else "every stored value"
    if not yes:
        if not sys.stdin.isatty():
            error(f"resetting {what} of {pipeline} needs --yes when not asked at a terminal")
            raise typer.Exit(EXIT_USAGE)
        typer.confirm(f"Forget {what} of {pipeline}?", abort=True)
    removed = _journal(loaded, "reset_state", pipeline, key)
    plain(f"{pipeline}: {removed} value(s) removed")


def _not_a_mark(loaded: Config, pipeline: str, key: str, value: Any) -> str | None:
    """Why ``key`` = ``value`` is no mark a run would read, or None. A value set under a
    stage that does not exist (or is not incremental) would be kept and never used."""
    from datetime import datetime

    from podium.pipeline import Fetch

    stage_name = key.removeprefix("incremental:").split(":", 1)[0]
    stages = {s.name: s for s in loaded.pipeline(pipeline).stages}
    incremental = [n for n, s in stages.items() if isinstance(s, Fetch) and s.incremental]
    stage = stages.get(stage_name)
    if not isinstance(stage, Fetch) or stage.incremental is None:
        known = ", ".join(f"incremental:{n}" for n in incremental) or "none"
        return f"key {key!r}: {pipeline} has no incremental stage {stage_name!r} (keys: {known})"
    if stage.incremental.window is not None:
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return (
                f"key {key!r}: a window's mark is a time, e.g. 2026-11-01T00:00:00Z (not {value!r})"
            )
    return None
