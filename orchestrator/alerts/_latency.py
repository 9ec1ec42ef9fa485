"""Response-time histograms: fixed log-spaced buckets, mergeable by adding counts.

Hand-written on purpose: the journal sums them per hour in plain JSON lists, and a
percentile over a month is the merge of ~720 of them — no sketch library needed for
that, and none whose wire format would tie the journal to it. Bucket ``i`` counts times
in (1.25^(i-1), 1.25^i] ms (bucket 0: up to 1 ms; the last: above 10 min), so a
percentile read from them is within 12 % of the exact value.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence

RATIO = 1.25
BOUNDS_MS: tuple[float, ...] = tuple(RATIO**i for i in range(61))  # 1 ms … ~10.6 min
BUCKETS = len(BOUNDS_MS) + 1


def empty() -> list[int]:
    return [0] * BUCKETS


def bucket(ms: float) -> int:
    return bisect_left(BOUNDS_MS, ms)


def merge(into: list[int], other: Sequence[int] | None) -> list[int]:
    """Add ``other``'s counts to ``into`` (a histogram of another length is ignored)."""
    if other and len(other) == len(into):
        for i, n in enumerate(other):
            into[i] += n
    return into


def merged(histograms: Iterable[Sequence[int] | None]) -> list[int]:
    total = empty()
    for histogram in histograms:
        merge(total, histogram)
    return total


def percentile(histogram: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0–1) in ms, interpolated within its bucket on a log scale;
    None for an empty histogram."""
    total = sum(histogram)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(histogram):
        if n and seen + n >= rank:
            low = BOUNDS_MS[i - 1] if i > 0 else BOUNDS_MS[0] / RATIO
            high = BOUNDS_MS[i] if i < len(BOUNDS_MS) else BOUNDS_MS[-1] * RATIO
            share = (rank - seen) / n
            return float(math.exp(math.log(low) + share * (math.log(high) - math.log(low))))
        seen += n
    return BOUNDS_MS[-1]
