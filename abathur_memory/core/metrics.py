"""What a measured call is, and how latencies are kept: fixed buckets, quantiles from them.

Each call (a tool, a command, a console page) is one :class:`CallMetric`. Its latency is
also filed in one of :data:`LATENCY_BOUNDS_MS`'s buckets (a 1-1.5-2-3-5-7.5 series, so a
quantile read from the counts is within about a third of the truth, as Prometheus'
``histogram_quantile`` is): older calls are rolled up into per-minute bucket counts, and a
window's p50/p95/p99 come from adding counts, whichever table they sit in.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass

# Upper bounds (ms) of the latency buckets; a last bucket holds everything above.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1, 1.5, 2, 3, 5, 7.5,
    10, 15, 20, 30, 50, 75,
    100, 150, 200, 300, 500, 750,
    1000, 1500, 2000, 3000, 5000, 7500,
    10_000, 30_000, 60_000,
)  # fmt: skip
BUCKETS = len(LATENCY_BOUNDS_MS) + 1

OK = "ok"


def bucket_of(latency_ms: float) -> int:
    """The index of the bucket ``latency_ms`` falls in (its bound is >= it)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


@dataclass(frozen=True, slots=True)
class CallMetric:
    """One call: when it ended (seconds since the epoch), what ran, for whom, how it ended
    (``ok`` or the error kind), how long it took and how many rows it touched."""

    at: float
    name: str
    actor: str
    outcome: str
    latency_ms: float
    rows: int | None
    bucket: int


@dataclass(frozen=True, slots=True)
class BucketCount:
    """Calls of one tool that ended one way with latencies in one bucket (in one time step
    for a series: ``step`` counts steps from the start of the window)."""

    name: str
    outcome: str
    bucket: int
    calls: int
    total_ms: float
    max_ms: float
    rows: int
    step: int = 0


def quantile(counts: Mapping[int, int], q: float, max_ms: float) -> float | None:
    """The ``q`` quantile of a histogram (bucket -> calls), interpolated linearly inside its
    bucket; the last bucket and the highest one reach up to ``max_ms``. None when empty."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(counts):
        n = counts[bucket]
        if n <= 0:
            continue
        if seen + n >= rank:
            low = LATENCY_BOUNDS_MS[bucket - 1] if bucket > 0 else 0.0
            high = LATENCY_BOUNDS_MS[bucket] if bucket < len(LATENCY_BOUNDS_MS) else max_ms
            high = min(high, max_ms) if max_ms > low else high
            fraction = (rank - seen) / n
            return round(low + (high - low) * fraction, 3)
        seen += n
    return round(max_ms, 3)  # pragma: no cover - rounding at the very top
