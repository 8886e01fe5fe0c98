"""Redaction and erasure on PostgreSQL (SQLite's redaction.py says what each keeps)."""

from __future__ import annotations

import json
from typing import Any

from abathur_memory.core.records import MemoryEntry
from abathur_memory.errors import NotFound
from abathur_memory.store.postgres import rows
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.puts import lock_keys
from abathur_memory.store.postgres.spaces import live_spaces
from abathur_memory.store.postgres.times import SQL_NOW

_AUDIT = """
INSERT INTO audit (action_type, action_data, result, memory_operation_type, memory_namespace,
                   memory_entry_id, actor)
VALUES (%s, %s::jsonb, 'ok', %s, %s, %s, %s)
"""


async def _drop_index_rows(conn: Conn, entry_ids: list[int]) -> None:
    if not entry_ids:
        return
    await conn.execute("DELETE FROM memory_search_index WHERE entry_id = ANY(%s)", (entry_ids,))
    await conn.execute("DELETE FROM consolidation_vectors WHERE entry_id = ANY(%s)", (entry_ids,))
    for space in await live_spaces(conn):
        found = await (
            await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (space.memory_vectors,))
        ).fetchone()
        if found and found[0]:
            await conn.execute(
                f"DELETE FROM {space.memory_vectors} WHERE entry_id = ANY(%s)", (entry_ids,)
            )


async def redact(conn: Conn, namespace: str, key: str, version: int, actor: str) -> MemoryEntry:
    await lock_keys(conn, [(namespace, key)])
    row = await (
        await conn.execute(
            "SELECT id, redacted_at FROM memory_entries WHERE namespace = %s AND key = %s"
            " AND version = %s",
            (namespace, key, version),
        )
    ).fetchone()
    if row is None:
        raise NotFound(f"no memory {namespace}/{key} version {version}")
    entry_id = row[0]
    if row[1] is None:
        await conn.execute(
            "UPDATE memory_entries SET value = 'null'::jsonb, metadata = '{}'::jsonb,"
            f" redacted_at = {SQL_NOW}, redacted_by = %s WHERE id = %s",
            (actor, entry_id),
        )
        await _drop_index_rows(conn, [entry_id])
        data = json.dumps({"key": key, "version": version})
        await conn.execute(_AUDIT, ("memory_redact", data, "update", namespace, entry_id, actor))
    found = await (
        await conn.execute(f"SELECT {rows.MEMORY} FROM memory_entries WHERE id = %s", (entry_id,))
    ).fetchone()
    assert found is not None
    return rows.memory(found)


async def _deleted(conn: Conn, sql: str, params: Any) -> int:
    """Rows a DELETE removed (rowcount is not known inside a pipeline)."""
    found = await (
        await conn.execute(f"WITH d AS ({sql} RETURNING 1) SELECT count(*) FROM d", params)
    ).fetchone()
    return int(found[0]) if found else 0


def _under(column: str, roots: list[str]) -> tuple[str, list[str]]:
    clauses, params = [], []
    for root in roots:
        clauses.append(f"({column} = %s OR ({column} > %s AND {column} < %s))")
        params += [root, root + ":", root + ";"]
    return "(" + " OR ".join(clauses) + ")", params


async def erase_user(conn: Conn, user: str, actor: str) -> dict[str, Any]:
    await conn.execute(
        "SELECT pg_advisory_xact_lock("
        "hashtextextended('abathur-memory memory writers ' || current_schema(), 0))"
    )
    sessions = [
        r[0]
        for r in await (
            await conn.execute("SELECT id FROM sessions WHERE user_id = %s", (user,))
        ).fetchall()
    ]
    roots = [f"user:{user}", *(f"session:{s}" for s in sessions)]
    where, params = _under("namespace", roots)
    ids = [
        r[0]
        for r in await (
            await conn.execute(f"SELECT id FROM memory_entries WHERE {where}", params)
        ).fetchall()
    ]
    from_where, from_params = _under("from_namespace", roots)
    to_where, to_params = _under("to_namespace", roots)
    links = await _deleted(
        conn, f"DELETE FROM memory_links WHERE {from_where} OR {to_where}", from_params + to_params
    )
    await _drop_index_rows(conn, ids)
    await conn.execute(
        "UPDATE audit SET memory_entry_id = NULL WHERE memory_entry_id = ANY(%s)", (ids,)
    )
    memories = await _deleted(conn, f"DELETE FROM memory_entries WHERE {where}", params)
    task_ids = [
        r[0]
        for r in await (
            await conn.execute(
                "SELECT id FROM tasks WHERE created_by = %s OR session_id = ANY(%s)",
                (f"user:{user}", sessions),
            )
        ).fetchall()
    ]
    checkpoints = await _deleted(
        conn, "DELETE FROM checkpoints WHERE task_id = ANY(%s)", (task_ids,)
    )
    await conn.execute(
        "UPDATE tasks SET parent_task_id = NULL WHERE parent_task_id = ANY(%s)", (task_ids,)
    )
    tasks = await _deleted(conn, "DELETE FROM tasks WHERE id = ANY(%s)", (task_ids,))
    events = await _deleted(
        conn, "DELETE FROM session_events WHERE session_id = ANY(%s)", (sessions,)
    )
    removed = await _deleted(conn, "DELETE FROM sessions WHERE user_id = %s", (user,))
    counts = {
        "memory_versions": memories,
        "links": links,
        "sessions": removed,
        "session_events": events,
        "tasks": tasks,
        "checkpoints": checkpoints,
    }
    await conn.execute(
        _AUDIT,
        ("erase_user", json.dumps({"user": user, **counts}), "delete", f"user:{user}", None, actor),
    )
    return counts


class PostgresRedactionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def redact(self, namespace: str, key: str, version: int, actor: str) -> MemoryEntry:
        return await self.db.transaction(
            lambda conn: redact(conn, namespace, key, version, actor), what="redacting a memory"
        )

    async def erase_user(self, user: str, actor: str) -> dict[str, Any]:
        return await self.db.transaction(
            lambda conn: erase_user(conn, user, actor), what="erasing a user"
        )
