"""Measured calls on SQLite: one row per call in ``metrics``, minutes in ``metric_minutes``,
and the facts ``stats`` and the console's overview show (counts, file sizes, index lag)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from abathur_memory.core.browse import DatabaseFacts
from abathur_memory.core.metrics import BucketCount, CallMetric
from abathur_memory.core.spaces import EmbeddingIdentity
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite import memory_index as sqlite_memory_index
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.spaces import memory_space

_INSERT = (
    "INSERT INTO metrics (timestamp, metric_name, metric_value, principal, outcome,"
    " rows_touched, bucket) VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_ROLL_UP = """
INSERT INTO metric_minutes (minute, metric_name, principal, outcome, bucket, calls, total_ms,
                            max_ms, rows_touched)
SELECT strftime('%Y-%m-%d %H:%M:00.000', timestamp), metric_name, coalesce(principal, ''),
       outcome, coalesce(bucket, 0), count(*), sum(metric_value), max(metric_value),
       coalesce(sum(rows_touched), 0)
FROM metrics WHERE timestamp < ? AND outcome IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1
ON CONFLICT (minute, metric_name, principal, outcome, bucket) DO UPDATE SET
    calls = calls + excluded.calls,
    total_ms = total_ms + excluded.total_ms,
    max_ms = max(max_ms, excluded.max_ms),
    rows_touched = rows_touched + excluded.rows_touched
"""


def _stored(at: float) -> str:
    return timestamps.to_db(datetime.fromtimestamp(at, UTC))


def _write(conn: driver.Connection, calls: Sequence[CallMetric]) -> None:
    conn.executemany(
        _INSERT,
        [
            (_stored(c.at), c.name, c.latency_ms, c.actor, c.outcome, c.rows, c.bucket)
            for c in calls
        ],
    )


def _compact(conn: driver.Connection, raw_before: str, minutes_before: str) -> tuple[int, int]:
    conn.execute(_ROLL_UP, (raw_before,))
    rolled = conn.execute(
        "DELETE FROM metrics WHERE timestamp < ? AND outcome IS NOT NULL", (raw_before,)
    ).rowcount
    pruned = conn.execute("DELETE FROM metric_minutes WHERE minute < ?", (minutes_before,)).rowcount
    return rolled, pruned


def _buckets(
    conn: driver.Connection, since: str, actor: str | None, step_s: int | None
) -> list[BucketCount]:
    who = " AND principal = :actor" if actor is not None else ""
    if step_s is None:
        raw_step = minute_step = "0"
    else:
        raw_step = "CAST((julianday(timestamp) - julianday(:since)) * 86400.0 / :step AS INTEGER)"
        minute_step = "CAST((julianday(minute) - julianday(:since)) * 86400.0 / :step AS INTEGER)"
    sql = f"""
        SELECT metric_name, outcome, bucket, sum(calls), sum(total_ms), max(max_ms),
               sum(rows_touched), step
        FROM (
            SELECT metric_name, outcome, coalesce(bucket, 0) AS bucket, 1 AS calls,
                   metric_value AS total_ms, metric_value AS max_ms,
                   coalesce(rows_touched, 0) AS rows_touched, {raw_step} AS step
            FROM metrics WHERE timestamp >= :since AND outcome IS NOT NULL{who}
            UNION ALL
            SELECT metric_name, outcome, bucket, calls, total_ms, max_ms, rows_touched,
                   {minute_step} AS step
            FROM metric_minutes WHERE minute >= :since{who}
        )
        GROUP BY metric_name, outcome, bucket, step
    """
    params: dict[str, Any] = {"since": since, "actor": actor, "step": step_s}
    return [
        BucketCount(
            r[0], r[1], int(r[2]), int(r[3]), float(r[4]), float(r[5]), int(r[6]), int(r[7])
        )
        for r in conn.execute(sql, params)
    ]


def _scalar(conn: driver.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0] or 0) if row else 0


def _facts(conn: driver.Connection, path: str, identity: EmbeddingIdentity | None) -> DatabaseFacts:
    space = memory_space(conn, identity) if identity is not None else None
    behind = sqlite_memory_index.pending(conn, space, with_vectors=identity is not None)
    page_size = _scalar(conn, "PRAGMA page_size")
    pages = _scalar(conn, "PRAGMA page_count")
    try:
        wal: int | None = os.path.getsize(path + "-wal")
    except OSError:
        wal = 0
    return DatabaseFacts(
        backend="sqlite",
        location=path,
        memories=_scalar(
            conn,
            "SELECT count(*) FROM (SELECT DISTINCT namespace, key FROM memory_entries"
            " WHERE is_deleted = 0)",
        ),
        memory_versions=_scalar(conn, "SELECT count(*) FROM memory_entries"),
        sessions=_scalar(conn, "SELECT count(*) FROM sessions"),
        session_events=_scalar(conn, "SELECT coalesce(sum(last_seq), 0) FROM sessions"),
        tasks=_scalar(conn, "SELECT count(*) FROM tasks"),
        documents=_scalar(conn, "SELECT count(*) FROM document_index"),
        audit_rows=_scalar(conn, "SELECT count(*) FROM audit"),
        size_bytes=page_size * pages,
        wal_bytes=wal,
        memory_changes_behind=behind,
    )


class SqliteMetricsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def write(self, calls: Sequence[CallMetric]) -> None:
        if calls:
            await self.db.write(_write, calls)

    async def compact(self, raw_before: datetime, minutes_before: datetime) -> tuple[int, int]:
        return await self.db.write(
            _compact, timestamps.to_db(raw_before), timestamps.to_db(minutes_before)
        )

    async def buckets(
        self, since: datetime, actor: str | None, step_s: int | None
    ) -> list[BucketCount]:
        return await self.db.read(_buckets, timestamps.to_db(since), actor, step_s)

    async def facts(self, identity: EmbeddingIdentity | None) -> DatabaseFacts:
        return await self.db.read(_facts, str(self.db.path), identity)
