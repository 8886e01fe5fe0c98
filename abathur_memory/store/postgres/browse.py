"""Reads for looking at what is stored (the console) on PostgreSQL: SQLite's
store/sqlite/browse.py query for query."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from abathur_memory.core.browse import AuditQuery, AuditRecord, DocumentFile, NamespaceCount
from abathur_memory.core.principal import Principal
from abathur_memory.store.postgres.connection import Database
from abathur_memory.store.postgres.readable import readable_sql


async def namespaces(
    db: Database, principal: Principal, prefix: str | None, after: str, limit: int
) -> list[NamespaceCount]:
    condition, params = readable_sql(principal, prefix, column="namespace")
    found = await db.fetchall(
        "SELECT namespace, count(DISTINCT key) FROM memory_entries"
        f" WHERE NOT is_deleted AND namespace > %s AND {condition}"
        " GROUP BY namespace ORDER BY namespace LIMIT %s",
        [after, *params, limit],
    )
    return [NamespaceCount(namespace=r[0], keys=int(r[1])) for r in found]


async def audit_page(
    db: Database, query: AuditQuery, before_id: int | None, limit: int
) -> list[AuditRecord]:
    clauses: list[str] = []
    params: list[Any] = []
    if before_id is not None:
        clauses.append("id < %s")
        params.append(before_id)
    if query.actor is not None:
        clauses.append("actor = %s")
        params.append(query.actor)
    if query.action is not None:
        clauses.append("action_type = %s")
        params.append(query.action)
    if query.denied:
        clauses.append("result = 'denied'")
    if query.namespace is not None and query.key is not None:
        mine = "memory_entry_id = ANY(%s) OR " if query.entry_ids else ""
        clauses.append(
            f"({mine}(memory_namespace = %s AND memory_entry_id IS NULL"
            " AND action_data ->> 'key' = %s))"
        )
        if query.entry_ids:
            params.append(list(query.entry_ids))
        params.extend([query.namespace, query.key])
    elif query.namespace is not None:
        clauses.append("memory_namespace = %s")
        params.append(query.namespace)
    where = " AND ".join(clauses) or "true"
    found = await db.fetchall(
        'SELECT id, "timestamp", actor, action_type, result, memory_operation_type,'
        f" memory_namespace, memory_entry_id, action_data FROM audit WHERE {where}"
        " ORDER BY id DESC LIMIT %s",
        [*params, limit],
    )
    return [
        AuditRecord(
            id=r[0],
            timestamp=r[1],
            actor=r[2],
            action=r[3],
            result=r[4],
            operation=r[5],
            namespace=r[6],
            entry_id=r[7],
            data=_object(r[8]),
        )
        for r in found
    ]


def _object(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return value if isinstance(value, dict) else {"value": value}


async def record(db: Database, actor: str, action: str, data: dict[str, object]) -> int:
    row = await db.fetchone(
        "INSERT INTO audit (action_type, action_data, result, actor) VALUES (%s, %s, 'ok', %s)"
        " RETURNING id",
        (action, Jsonb(data), actor),
        what="auditing",
    )
    assert row is not None
    return int(row[0])


async def deltas(db: Database, session_id: str, end_seq: int) -> list[dict[str, object]]:
    found = await db.fetchall(
        "SELECT state_delta FROM session_events WHERE session_id = %s AND seq <= %s"
        " AND state_delta IS NOT NULL ORDER BY seq",
        (session_id, end_seq),
    )
    return [r[0] for r in found]


async def files(
    db: Database, root_id: int, status: str | None, after: str, limit: int
) -> list[DocumentFile]:
    which = " AND sync_status = %s" if status is not None else ""
    found = await db.fetchall(
        "SELECT id, file_path, title, sync_status, size_bytes, last_synced_at, updated_at,"
        " metadata FROM document_index WHERE root_id = %s AND file_path > %s"
        f"{which} ORDER BY file_path LIMIT %s",
        [root_id, after, *([status] if status is not None else []), limit],
    )
    return [
        DocumentFile(
            id=r[0],
            path=r[1],
            title=r[2],
            status=r[3],
            size_bytes=r[4],
            last_synced_at=r[5],
            updated_at=r[6] or "",
            error=(_object(r[7]) or {}).get("error") if r[3] == "failed" else None,
        )
        for r in found
    ]
