"""Every tool call and command measured, without making the call wait.

:class:`MetricsRecorder` takes one :class:`~abathur_memory.core.metrics.CallMetric` per call
into a list (an append, no lock, no I/O) and writes them in one transaction a moment later
from a background task; a burst of calls is one write. A batch the database refuses is
dropped with a warning (a measurement is never worth blocking or failing a call). The
maintenance worker rolls rows older than ``metrics_raw_hours`` into per-minute rows and
prunes minutes older than ``metrics_retention_days`` (:meth:`MetricsService.compact`).

:class:`MetricsService` reads them back: per-tool calls, error rates and latency quantiles
over a window (``stats``, the console, ``/metrics``), and the database's facts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from abathur_memory.core.browse import DatabaseFacts
from abathur_memory.core.metrics import (
    LATENCY_BOUNDS_MS,
    OK,
    BucketCount,
    CallMetric,
    bucket_of,
    quantile,
)
from abathur_memory.core.spaces import EmbeddingIdentity
from abathur_memory.core.throttle import Throttle
from abathur_memory.errors import ReadOnly
from abathur_memory.store.protocols import MetricsStore

log = logging.getLogger(__name__)

FLUSH_DELAY_S = 1.0  # calls within this are written in one transaction
MAX_QUEUED = 50_000  # calls held while the database is busy; more are counted and dropped
WARN_EVERY_S = 60.0


class MetricsRecorder:
    """Queues calls and writes them in batches from the event loop (see the module doc)."""

    def __init__(self, store: MetricsStore, *, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._queued: list[CallMetric] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped = 0
        self.written = 0
        self._warning = Throttle(WARN_EVERY_S)
        # Since this process started, for /metrics (Prometheus counters are cumulative):
        # (name, actor, outcome) -> calls and (name, actor, bucket) -> calls, and latency sums.
        self.calls: dict[tuple[str, str, str], int] = defaultdict(int)
        self.latencies: dict[tuple[str, str, int], int] = defaultdict(int)
        self.sums_ms: dict[tuple[str, str], float] = defaultdict(float)

    def record(
        self,
        name: str,
        actor: str,
        outcome: str,
        latency_ms: float,
        rows: int | None = None,
    ) -> None:
        """Queue one call (never blocks, never raises)."""
        if not self.enabled or self._closed:
            return
        if len(self._queued) >= MAX_QUEUED:
            self.dropped += 1
            return
        latency_ms = max(0.0, latency_ms)
        bucket = bucket_of(latency_ms)
        self.calls[name, actor, outcome] += 1
        self.latencies[name, actor, bucket] += 1
        self.sums_ms[name, actor] += latency_ms
        self._queued.append(CallMetric(time.time(), name, actor, outcome, latency_ms, rows, bucket))
        if self._flush_task is None or self._flush_task.done():
            with contextlib.suppress(RuntimeError):  # no running loop: close() writes them
                self._flush_task = asyncio.get_running_loop().create_task(
                    self._flush_soon(), name="metrics-flush"
                )

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_DELAY_S)
        await self.flush()

    async def flush(self) -> None:
        """Write what is queued now (one transaction)."""
        batch, self._queued = self._queued, []
        if not batch:
            return
        try:
            await self.store.write(batch)
            self.written += len(batch)
        except ReadOnly:  # a database served read-only is not measured (nor warned about)
            self.enabled = False
            self.dropped += len(batch)
        except Exception as exc:  # metrics must never fail a call, nor stop the next flush
            self.dropped += len(batch)
            if (held := self._warning.ready()) is not None:
                log.warning(
                    "could not record %d call metrics: %s%s",
                    len(batch),
                    exc,
                    f" ({held} more failures since the last warning)" if held else "",
                )

    async def close(self) -> None:
        """Write the rest, then refuse more."""
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flush_task
        await self.flush()
        self._closed = True


class ToolStats(BaseModel):
    """One tool's (or command's) calls over a window."""

    name: str
    calls: int
    errors: int
    error_rate: float
    outcomes: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float
    mean_ms: float
    rows: int


class Stats(BaseModel):
    """What ``stats`` prints: the window, per-tool figures, and the database's facts."""

    since: str
    window_s: float
    calls: int
    errors: int
    tools: list[ToolStats]
    database: DatabaseFacts


@dataclass
class _Tool:
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    histogram: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    total_ms: float = 0.0
    max_ms: float = 0.0
    rows: int = 0


def summarise(counts: Sequence[BucketCount]) -> list[ToolStats]:
    """Per-tool figures from bucket counts, busiest first."""
    tools: dict[str, _Tool] = defaultdict(_Tool)
    for c in counts:
        t = tools[c.name]
        t.outcomes[c.outcome] += c.calls
        t.histogram[c.bucket] += c.calls
        t.total_ms += c.total_ms
        t.max_ms = max(t.max_ms, c.max_ms)
        t.rows += c.rows
    found = []
    for name, t in tools.items():
        calls = sum(t.outcomes.values())
        errors = calls - t.outcomes.get(OK, 0)
        found.append(
            ToolStats(
                name=name,
                calls=calls,
                errors=errors,
                error_rate=round(errors / calls, 4) if calls else 0.0,
                outcomes=dict(sorted(t.outcomes.items())),
                p50_ms=quantile(t.histogram, 0.50, t.max_ms),
                p95_ms=quantile(t.histogram, 0.95, t.max_ms),
                p99_ms=quantile(t.histogram, 0.99, t.max_ms),
                max_ms=round(t.max_ms, 3),
                mean_ms=round(t.total_ms / calls, 3) if calls else 0.0,
                rows=t.rows,
            )
        )
    found.sort(key=lambda s: (-s.calls, s.name))
    return found


@dataclass(frozen=True)
class Series:
    """Calls, errors and p95 per step of a window, for one tool (the console's plots)."""

    name: str
    step_s: int
    calls: list[int]
    errors: list[int]
    p95_ms: list[float | None]


class MetricsService:
    def __init__(self, store: MetricsStore, identity: EmbeddingIdentity | None = None) -> None:
        self.store = store
        self.identity = identity

    async def stats(self, window: timedelta, actor: str | None = None) -> Stats:
        since = datetime.now(UTC) - window
        tools = summarise(await self.store.buckets(since, actor, None))
        return Stats(
            since=since.isoformat(timespec="seconds").replace("+00:00", "Z"),
            window_s=window.total_seconds(),
            calls=sum(t.calls for t in tools),
            errors=sum(t.errors for t in tools),
            tools=tools,
            database=await self.facts(),
        )

    async def series(
        self, window: timedelta, steps: int, actor: str | None = None
    ) -> tuple[datetime, list[Series]]:
        """Per-tool series over ``window`` cut into ``steps`` steps (oldest first)."""
        step_s = max(60, int(window.total_seconds()) // steps)
        since = datetime.now(UTC) - timedelta(seconds=step_s * steps)
        counts = await self.store.buckets(since, actor, step_s)
        per: dict[str, list[list[BucketCount]]] = {}
        for c in counts:
            if 0 <= c.step < steps:
                per.setdefault(c.name, [[] for _ in range(steps)])[c.step].append(c)
        found = []
        for name in sorted(per):
            calls, errors, p95 = [], [], []
            for cell in per[name]:
                histogram: dict[int, int] = defaultdict(int)
                for c in cell:
                    histogram[c.bucket] += c.calls
                calls.append(sum(c.calls for c in cell))
                errors.append(sum(c.calls for c in cell if c.outcome != OK))
                p95.append(quantile(histogram, 0.95, max((c.max_ms for c in cell), default=0)))
            found.append(Series(name, step_s, calls, errors, p95))
        return since, found

    async def facts(self) -> DatabaseFacts:
        return await self.store.facts(self.identity)

    async def compact(self, raw_hours: float, retention_days: float) -> tuple[int, int]:
        now = datetime.now(UTC)
        return await self.store.compact(
            now - timedelta(hours=raw_hours), now - timedelta(days=retention_days)
        )


def prometheus_text(recorder: MetricsRecorder, actor: str | None) -> str:
    """The Prometheus text exposition (0.0.4) of the calls since this process started (of
    ``actor`` only, if given): a counter per tool and outcome, a latency histogram per
    tool (seconds, the buckets of core/metrics.py)."""
    calls: dict[tuple[str, str], int] = defaultdict(int)
    for (name, who, outcome), n in recorder.calls.items():
        if actor is None or who == actor:
            calls[name, outcome] += n
    histogram: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for (name, who, bucket), n in recorder.latencies.items():
        if actor is None or who == actor:
            histogram[name][bucket] += n
    sums: dict[str, float] = defaultdict(float)
    for (name, who), ms in recorder.sums_ms.items():
        if actor is None or who == actor:
            sums[name] += ms
    lines = [
        "# HELP abathur_calls_total Calls per tool (or command) and outcome.",
        "# TYPE abathur_calls_total counter",
    ]
    for (name, outcome), n in sorted(calls.items()):
        lines.append(
            f'abathur_calls_total{{tool="{_label(name)}",outcome="{_label(outcome)}"}} {n}'
        )
    lines += [
        "# HELP abathur_call_seconds Latency of calls per tool.",
        "# TYPE abathur_call_seconds histogram",
    ]
    for name in sorted(histogram):
        tool = _label(name)
        seen = 0
        for i, bound in enumerate(LATENCY_BOUNDS_MS):
            seen += histogram[name].get(i, 0)
            lines.append(
                f'abathur_call_seconds_bucket{{tool="{tool}",le="{bound / 1000:g}"}} {seen}'
            )
        total = sum(histogram[name].values())
        lines.append(f'abathur_call_seconds_bucket{{tool="{tool}",le="+Inf"}} {total}')
        lines.append(f'abathur_call_seconds_sum{{tool="{tool}"}} {sums[name] / 1000:.6f}')
        lines.append(f'abathur_call_seconds_count{{tool="{tool}"}} {total}')
    return "\n".join(lines) + "\n"


def facts_text(facts: DatabaseFacts) -> str:
    """The database's facts as Prometheus gauges."""
    gauges: dict[str, Any] = {
        "abathur_memories": facts.memories,
        "abathur_memory_versions": facts.memory_versions,
        "abathur_sessions": facts.sessions,
        "abathur_session_events": facts.session_events,
        "abathur_tasks": facts.tasks,
        "abathur_documents": facts.documents,
        "abathur_audit_rows": facts.audit_rows,
        "abathur_database_bytes": facts.size_bytes,
        "abathur_wal_bytes": facts.wal_bytes,
        "abathur_memory_index_lag": facts.memory_changes_behind,
    }
    lines = []
    for name, value in gauges.items():
        if value is None:
            continue
        lines += [f"# TYPE {name} gauge", f"{name} {value}"]
    return "\n".join(lines) + "\n"


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
