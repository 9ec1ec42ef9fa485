"""``podium alerts``: what is open, what was sent; mute, unmute, send a test."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import DEFAULT_CONFIG, EXIT_FAILED, ConfigOption, app, console, plain, user_errors

if TYPE_CHECKING:
    from podium.orchestrator import Config

alerts_app = typer.Typer(
    help="Alerts: open incidents and notifications; mute, unmute, test.",
    no_args_is_help=False,
    rich_markup_mode=None,
)
app.add_typer(alerts_app, name="alerts")


async def _monitoring(loaded: Config, method: str, *args: Any) -> Any:
    from podium.orchestrator import open_database
    from podium.orchestrator.storage import Monitoring

    async with open_database(loaded.database.url) as db:
        return await getattr(Monitoring(db), method)(*args)


def _call(loaded: Config, method: str, *args: Any) -> Any:
    import functools

    import anyio

    return anyio.run(functools.partial(_monitoring, loaded, method, *args), backend="asyncio")


@alerts_app.callback(invoke_without_command=True)
@user_errors
def alerts(
    ctx: typer.Context,
    config: ConfigOption = DEFAULT_CONFIG,
    limit: Annotated[int, typer.Option(help="how many recent notifications", min=1)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """The alerts defined, open incidents, mutes, and the latest notifications."""
    if ctx.invoked_subcommand is not None:
        return
    import anyio

    from podium.orchestrator.config import load_config

    loaded = load_config(config)

    async def fetch() -> dict[str, Any]:
        from podium.orchestrator import open_database
        from podium.orchestrator.storage import Monitoring

        async with open_database(loaded.database.url) as db:
            monitoring = Monitoring(db)
            return {
                "open": await monitoring.states(open_only=True),
                "mutes": await monitoring.mutes(),
                "recent": await monitoring.notifications(limit),
                "counts": await monitoring.outbox_counts(),
            }

    found = anyio.run(fetch, backend="asyncio")
    now = datetime.now(UTC)
    windows = [
        {"name": name, "alerts": w.alerts, "pipelines": w.pipelines}
        for name, w in loaded.maintenance.items()
        if w.active(now)
    ]
    if as_json:
        import orjson

        data = {
            "alerts": {name: _describe(entry) for name, entry in loaded.alerts.items()},
            "open_incidents": found["open"],
            "mutes": found["mutes"],
            "maintenance_now": windows,
            "notifications": found["recent"],
            "outbox": found["counts"],
        }
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _print_overview(loaded, found, windows)


def _describe(entry: Any) -> dict[str, Any]:
    from podium.orchestrator.notify import destinations

    if isinstance(entry, Exception):
        return {"error": str(entry)}
    return {"destinations": destinations(entry), "default": entry.default}


def _print_overview(loaded: Config, found: dict[str, Any], windows: list[Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from podium.orchestrator.notify import destinations

    out = console()
    defined = Table(title="alerts", title_justify="left")
    for column in ("alert", "destinations", "attached to"):
        defined.add_column(column)
    for name, entry in loaded.alerts.items():
        if isinstance(entry, Exception):
            defined.add_row(Text(name), Text(f"invalid: {entry}", style="red"), Text(""))
            continue
        uses = sorted(
            {r.label for rules in loaded.rules.values() for r in rules if r.alert == name}
        )
        where = ", ".join(uses) or "nothing"
        defined.add_row(
            Text(name + (" (default)" if entry.default else "")),
            Text(", ".join(destinations(entry))),
            Text(where),
        )
    out.print(defined)
    incidents = Table(title="open incidents", title_justify="left")
    for column in ("alert", "about", "since", "failures", "cause"):
        incidents.add_column(column)
    for row in found["open"]:
        incidents.add_row(
            Text(row["alert"]),
            Text(row["label"]),
            Text(_when(row["opened_at"])),
            Text(str(row["failures"])),
            Text(row["last_cause"] or ""),
        )
    out.print(incidents if found["open"] else Text("no open incidents", style="green"))
    for mute in found["mutes"]:
        reason = f" ({mute['reason']})" if mute["reason"] else ""
        plain(f"muted: {mute['target']} until {_when(mute['until'])}{reason}")
    for window in windows:
        plain(f"maintenance window {window['name']!r} is open now")
    recent = Table(title="latest notifications", title_justify="left")
    for column in ("id", "queued", "alert", "kind", "about", "status", "note"):
        recent.add_column(column)
    for row in found["recent"]:
        style = {"sent": "green", "failed": "red", "pending": "yellow", "held": "yellow"}
        recent.add_row(
            Text(str(row["id"])),
            Text(_when(row["created_at"])),
            Text(row["alert"]),
            Text(row["kind"]),
            Text(row["label"]),
            Text(row["status"], style=style.get(row["status"], "")),
            Text(row["last_error"] or ""),
        )
    if found["recent"]:
        out.print(recent)
    waiting = sum(found["counts"].get(s, 0) for s in ("pending", "held"))
    if waiting:
        plain(f"{waiting} notification(s) waiting to be delivered (a daemon sends them)")


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else ""


def _target(loaded: Config, name: str) -> str:
    from podium.pipeline import ConfigError

    if name in loaded.alerts or name in loaded.pipelines:
        return name
    alerts = ", ".join(loaded.alerts) or "none"
    raise ConfigError(
        f"{name!r} is neither an alert nor a pipeline in {loaded.path} (alerts: {alerts})"
    )


@alerts_app.command()
@user_errors
def mute(
    name: Annotated[str, typer.Argument(help="an alert, or a pipeline (all its alerts)")],
    for_: Annotated[str, typer.Option("--for", help="how long: 30m, 2h, 1d")] = "1h",
    reason: Annotated[str | None, typer.Option(help="why, shown with the mute")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Silence notifications for a while; they are still recorded, as muted."""
    from podium.orchestrator.config import load_config
    from podium.pipeline import ConfigError, parse_duration

    loaded = load_config(config)
    target = _target(loaded, name)
    try:
        span = parse_duration(for_)
    except ValueError as exc:
        raise ConfigError(f"--for: {exc}") from None
    if span.total_seconds() <= 0:
        raise ConfigError("--for must be a positive duration, e.g. 2h")
    until = datetime.now(UTC) + span
    _call(loaded, "mute", target, until, reason, _who())
    plain(f"muted {target} until {_when(until)}")


@alerts_app.command()
@user_errors
def unmute(
    name: Annotated[str, typer.Argument(help="what `podium alerts mute` silenced")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """End the mutes of an alert or a pipeline now."""
    from podium.orchestrator.config import load_config

    loaded = load_config(config)
    ended = _call(loaded, "unmute", _target(loaded, name))
    plain(f"unmuted {name}" if ended else f"{name} was not muted")


@alerts_app.command()
@user_errors
def test(
    name: Annotated[str, typer.Argument(help="the alert to send a test notification to")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Send a test notification to every destination of an alert, now."""
    import functools

    import anyio

    from podium.orchestrator import Redactor
    from podium.orchestrator.alerts import Notification
    from podium.orchestrator.config import load_config
    from podium.orchestrator.notify import destinations, send
    from podium.pipeline import NotifyError

    loaded = load_config(config)
    alert = loaded.alert(name)
    now = datetime.now(UTC)
    notification = Notification(
        id=f"test-{int(now.timestamp())}",
        alert=name,
        subject=f"alert {name}",
        kind="test",
        title="",
        body="",
        cause=None,
        pipeline=None,
        run_id=None,
        at=now,
        incident=None,
        description=alert.description or None,
    )
    try:
        anyio.run(
            functools.partial(send, name, alert, notification, redact=Redactor(loaded.secrets)),
            backend="asyncio",
        )
    except NotifyError as exc:
        from ._app import error

        error(str(exc))
        raise typer.Exit(EXIT_FAILED) from None
    where = destinations(alert)
    plain(f"test notification sent to {len(where)} destination(s): {', '.join(where)}")


def _who() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
