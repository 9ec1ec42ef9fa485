"""Log sinks for the command line, the daemon, and hosts that embed podium.

Library code only calls ``logger``; podium's records are disabled until
``configure_logging`` (or the host's own ``logger.enable("podium")``) turns them on.
Every line carries the run id, pipeline and stage through loguru's context, which the
formats below print. Configuring podium never touches a handler it did not add, nor
loguru's global settings: a host application's logging stays as the host set it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any, TextIO

import orjson
from loguru import logger

from ._redact import Redactor

# Masks credential-looking query parameters and URL passwords in exception texts; the
# secrets a run knows by value are masked where that run logs.
_REDACT = Redactor()
# The handlers podium added: a second call replaces these, and only these.
_HANDLERS: list[int] = []


def _human_format(record: Any) -> str:
    extra = record["extra"]
    pipeline = extra.get("pipeline", "podium")
    stage = extra.get("stage")
    run_id = extra.get("run_id")
    where = pipeline.replace("{", "{{").replace("}", "}}").replace("<", r"\<")
    if stage:
        where += "/" + str(stage).replace("{", "{{").replace("}", "}}").replace("<", r"\<")
    run_part = f" [{run_id[:8]}]" if run_id else ""
    return (
        "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
        f"<cyan>{where}</cyan>{run_part} {{message}}\n"
    )


def _json_sink(stream: TextIO) -> Callable[[Any], None]:
    def sink(message: Any) -> None:
        record = message.record
        line = {
            "time": record["time"].isoformat(),
            "level": record["level"].name,
            "message": record["message"],
            **{k: v for k, v in record["extra"].items() if isinstance(v, str | int | float | bool)},
        }
        if record["exception"] is not None:
            # Never repr(): third-party exceptions carry request headers in theirs.
            exc = record["exception"].value
            line["exception"] = _REDACT(f"{type(exc).__name__}: {exc}".splitlines()[0])
        stream.write(orjson.dumps(line).decode() + "\n")
        stream.flush()

    return sink


def remove_logging() -> None:
    """Remove the handlers ``configure_logging`` added (a host's, and loguru's, stay)."""
    for handler_id in _HANDLERS:
        logger.remove(handler_id)
    _HANDLERS.clear()


def _podium_records(record: Any) -> bool:
    name = record["name"] or ""
    return name == "podium" or name.startswith("podium.")


def configure_logging(
    *,
    level: str = "INFO",
    json: bool = False,
    sink: Callable[[str], Any] | TextIO | None = None,
    replace_default: bool = False,
    colorize: bool | None = None,
) -> None:
    """Send podium's log records to ``sink`` (stderr by default), as text or JSON lines.

    Only podium's records reach this handler, and calling it again replaces the handler
    it added before — never one a host application added. ``colorize`` forces colour on
    or off (None: when the sink is a terminal). ``replace_default`` also
    removes loguru's own default stderr handler: the command line does this, since it
    owns the process; a host application keeps its handlers.
    """
    for handler_id in _HANDLERS:
        logger.remove(handler_id)
    _HANDLERS.clear()
    if replace_default:
        with contextlib.suppress(ValueError):  # loguru's default stderr handler, if still there
            logger.remove(0)
    stream: Any = sink or sys.stderr
    if json:
        target = stream if hasattr(stream, "write") else sys.stderr
        _HANDLERS.append(logger.add(_json_sink(target), level=level, filter=_podium_records))
    else:
        _HANDLERS.append(
            logger.add(
                stream,
                level=level,
                format=_human_format,
                filter=_podium_records,
                colorize=colorize,
                backtrace=False,
                diagnose=False,
            )
        )
    logger.enable("podium")
