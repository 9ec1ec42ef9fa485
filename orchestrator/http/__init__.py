"""The HTTP side of a run: the gateway every request passes, and the transport seam
(aiohttp for real, a function in memory, or cassettes recorded and played back)."""

from typing import TYPE_CHECKING, Any

from ._budget import BUDGETS, Budget, Budgets, Quota, QuotaExhausted, quota_from_headers
from ._gateway import ConnectorChannel, Gateway, Transports, error_kind
from ._retry import (
    Accept,
    GiveUp,
    Retry,
    backoff,
    decide_answer,
    decide_failure,
    decide_status,
    retry_after_seconds,
)
from ._stats import LATENCY_BUCKETS, ConnectorStats
from ._transport import AiohttpTransport, MockReply, MockTransport, Transport, reply

__all__ = [
    "BUDGETS",
    "LATENCY_BUCKETS",
    "Accept",
    "AiohttpTransport",
    "Budget",
    "Budgets",
    "ConnectorChannel",
    "ConnectorStats",
    "Gateway",
    "GiveUp",
    "MockReply",
    "MockTransport",
    "PlaybackTransport",
    "Quota",
    "QuotaExhausted",
    "RecordingTransport",
    "Retry",
    "Transport",
    "Transports",
    "backoff",
    "cassette_path",
    "decide_answer",
    "decide_failure",
    "decide_status",
    "error_kind",
    "play_from",
    "quota_from_headers",
    "record_to",
    "reply",
    "retry_after_seconds",
]

# Cassettes load on first use: a run without them does not pay for their modules.
_CASSETTES = {
    "PlaybackTransport": "_recording",
    "RecordingTransport": "_recording",
    "play_from": "_recording",
    "record_to": "_recording",
    "cassette_path": "_cassette",
}


def __getattr__(name: str) -> Any:
    module = _CASSETTES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from ._cassette import cassette_path as cassette_path
    from ._recording import PlaybackTransport as PlaybackTransport
    from ._recording import RecordingTransport as RecordingTransport
    from ._recording import play_from as play_from
    from ._recording import record_to as record_to
