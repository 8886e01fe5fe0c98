"""Measured calls on PostgreSQL: SQLite's store/sqlite/metrics.py, statement for statement
(one row per call in ``metrics``, minutes in ``metric_minutes``, and the database's facts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from abathur_memory.core.browse import DatabaseFacts
from abathur_memory.core.metrics import BucketCount, CallMetric
from abathur_memory.core.spaces import EmbeddingIdentity
from abathur_memory.store.postgres import memory_index
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.spaces import memory_space

_INSERT = (
    'INSERT INTO metrics ("timestamp", metric_name, metric_value, principal, outcome,'
    " rows_touched, bucket) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)

_ROLL_UP = """
INSERT INTO metric_minutes (minute, metric_name, principal, outcome, bucket, calls, total_ms,
                            max_ms, rows_touched)
SELECT date_trunc('minute', "timestamp"), metric_name, coalesce(principal, ''), outcome,
       coalesce(bucket, 0), count(*), sum(metric_value), max(metric_value),
       coalesce(sum(rows_touched), 0)
FROM metrics WHERE "timestamp" < %(before)s AND outcome IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (minute, metric_name, principal, outcome, bucket) DO UPDATE SET
    calls = metric_minutes.calls + excluded.calls,
    total_ms = metric_minutes.total_ms + excluded.total_ms,
    max_ms = greatest(metric_minutes.max_ms, excluded.max_ms),
    rows_touched = metric_minutes.rows_touched + excluded.rows_touched
"""


def _written(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


async def _compact(conn: Conn, raw_before: datetime, minutes_before: datetime) -> tuple[int, int]:
    await conn.execute(_ROLL_UP, {"before": raw_before})
    rolled = await _scalar(
        conn,
        'WITH gone AS (DELETE FROM metrics WHERE "timestamp" < %s AND outcome IS NOT NULL'
        " RETURNING 1) SELECT count(*) FROM gone",
        (raw_before,),
    )
    pruned = await _scalar(
        conn,
        "WITH gone AS (DELETE FROM metric_minutes WHERE minute < %s RETURNING 1)"
        " SELECT count(*) FROM gone",
        (minutes_before,),
    )
    return rolled, pruned


def _buckets_sql(actor: str | None, step_s: int | None) -> str:
    who = " AND principal = %(actor)s" if actor is not None else ""
    if step_s is None:
        raw_step = minute_step = "0"
    else:
        raw_step = 'floor(extract(epoch FROM ("timestamp" - %(since)s)) / %(step)s)::int'
        minute_step = "floor(extract(epoch FROM (minute - %(since)s)) / %(step)s)::int"
    return f"""
        SELECT metric_name, outcome, bucket, sum(calls), sum(total_ms), max(max_ms),
               sum(rows_touched), step
        FROM (
            SELECT metric_name, outcome, coalesce(bucket, 0) AS bucket, 1 AS calls,
                   metric_value AS total_ms, metric_value AS max_ms,
                   coalesce(rows_touched, 0) AS rows_touched, {raw_step} AS step
            FROM metrics WHERE "timestamp" >= %(since)s AND outcome IS NOT NULL{who}
            UNION ALL
            SELECT metric_name, outcome, bucket, calls, total_ms, max_ms, rows_touched,
                   {minute_step} AS step
            FROM metric_minutes WHERE minute >= %(since)s{who}
        ) AS calls
        GROUP BY metric_name, outcome, bucket, step
    """


async def _scalar(conn: Conn, sql: str, params: Any = None) -> int:
    row = await (await conn.execute(sql, params)).fetchone()
    return int(row[0] or 0) if row else 0


async def _facts(conn: Conn, label: str, identity: EmbeddingIdentity | None) -> DatabaseFacts:
    space = await memory_space(conn, identity) if identity is not None else None
    behind = await memory_index.pending(conn, space, with_vectors=identity is not None)
    return DatabaseFacts(
        backend="postgres",
        location=label,
        memories=await _scalar(
            conn,
            "SELECT count(*) FROM (SELECT DISTINCT namespace, key FROM memory_entries"
            " WHERE NOT is_deleted) AS live",
        ),
        memory_versions=await _scalar(conn, "SELECT count(*) FROM memory_entries"),
        sessions=await _scalar(conn, "SELECT count(*) FROM sessions"),
        session_events=await _scalar(conn, "SELECT coalesce(sum(last_seq), 0) FROM sessions"),
        tasks=await _scalar(conn, "SELECT count(*) FROM tasks"),
        documents=await _scalar(conn, "SELECT count(*) FROM document_index"),
        audit_rows=await _scalar(conn, "SELECT count(*) FROM audit"),
        size_bytes=await _scalar(
            conn,
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c"
            " WHERE c.relkind IN ('r', 'm') AND c.relnamespace = current_schema()::regnamespace",
        ),
        wal_bytes=None,  # the server's WAL is shared by every database on it
        memory_changes_behind=behind,
    )


class PostgresMetricsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def write(self, calls: Sequence[CallMetric]) -> None:
        if not calls:
            return
        params = [
            (_written(c.at), c.name, c.latency_ms, c.actor, c.outcome, c.rows, c.bucket)
            for c in calls
        ]

        async def insert(conn: Conn) -> None:
            await conn.cursor().executemany(_INSERT, params)

        await self.db.transaction(insert, what="recording metrics")

    async def compact(self, raw_before: datetime, minutes_before: datetime) -> tuple[int, int]:
        async def work(conn: Conn) -> tuple[int, int]:
            return await _compact(conn, raw_before, minutes_before)

        return await self.db.transaction(work, what="rolling up metrics")

    async def buckets(
        self, since: datetime, actor: str | None, step_s: int | None
    ) -> list[BucketCount]:
        found = await self.db.fetchall(
            _buckets_sql(actor, step_s), {"since": since, "actor": actor, "step": step_s}
        )
        return [
            BucketCount(
                r[0], r[1], int(r[2]), int(r[3]), float(r[4]), float(r[5]), int(r[6]), int(r[7])
            )
            for r in found
        ]

    async def facts(self, identity: EmbeddingIdentity | None) -> DatabaseFacts:
        async def work(conn: Conn) -> DatabaseFacts:
            return await _facts(conn, self.db.label, identity)

        return await self.db.run(work, what="reading the database's facts")
