"""Log sinks for the command line and the daemon: the one place logging is configured.

Library code only calls ``logger``; every line carries the run id, pipeline and stage
through loguru's context, which the formats below print.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

import orjson
from loguru import logger

from ._redact import Redactor

# Masks credential-looking query parameters and URL passwords in exception texts; the
# secrets a run knows by value are masked where that run logs.
_REDACT = Redactor()

HUMAN_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[pipeline]}</cyan>{extra[stage_part]}{extra[run_part]} {message}"
)


def _patch(record: Any) -> None:
    extra = record["extra"]
    extra.setdefault("pipeline", "podium")
    stage = extra.get("stage")
    extra["stage_part"] = f"/{stage}" if stage else ""
    run_id = extra.get("run_id")
    extra["run_part"] = f" [{run_id[:8]}]" if run_id else ""


def _json_sink(stream: TextIO) -> Callable[[Any], None]:
    def sink(message: Any) -> None:
        record = message.record
        extra = {k: v for k, v in record["extra"].items() if not k.endswith("_part")}
        line = {
            "time": record["time"].isoformat(),
            "level": record["level"].name,
            "message": record["message"],
            **{k: v for k, v in extra.items() if isinstance(v, str | int | float | bool)},
        }
        if record["exception"] is not None:
            # Never repr(): third-party exceptions carry request headers in theirs.
            exc = record["exception"].value
            line["exception"] = _REDACT(f"{type(exc).__name__}: {exc}".splitlines()[0])
        stream.write(orjson.dumps(line).decode() + "\n")
        stream.flush()

    return sink


def configure_logging(
    *, level: str = "INFO", json: bool = False, sink: Callable[[str], Any] | TextIO | None = None
) -> None:
    """Replace loguru's default handler with podium's (stderr, human or JSON lines)."""
    logger.remove()
    logger.configure(patcher=_patch)
    stream = sink or sys.stderr
    if json:
        logger.add(_json_sink(stream if hasattr(stream, "write") else sys.stderr), level=level)  # type: ignore[arg-type]
    else:
        logger.add(
            stream, level=level, format=HUMAN_FORMAT, colorize=None, backtrace=False, diagnose=False
        )
