"""The HTTP side of a run: the gateway every request passes, and the transport seam."""

from ._gateway import ConnectorChannel, Gateway, Transports, error_kind
from ._retry import GiveUp, Retry, backoff, decide_failure, decide_status, retry_after_seconds
from ._stats import LATENCY_BUCKETS, ConnectorStats
from ._transport import AiohttpTransport, MockReply, MockTransport, Transport, reply

__all__ = [
    "LATENCY_BUCKETS",
    "AiohttpTransport",
    "ConnectorChannel",
    "ConnectorStats",
    "Gateway",
    "GiveUp",
    "MockReply",
    "MockTransport",
    "Retry",
    "Transport",
    "Transports",
    "backoff",
    "decide_failure",
    "decide_status",
    "error_kind",
    "reply",
    "retry_after_seconds",
]
