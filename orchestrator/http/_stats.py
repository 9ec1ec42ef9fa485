"""The gateway's counters per connector: what was sent and how it was answered."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class ConnectorStats:
    requests: int = 0
    retries: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
