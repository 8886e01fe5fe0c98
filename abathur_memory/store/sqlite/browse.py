"""Reads for looking at what is stored (the console): namespaces with their live key
counts, audit rows by filter, a root's files, a session's state deltas. Each is one
index-ordered query that stops at its page."""

from __future__ import annotations

import json
from typing import Any

from abathur_memory.core.browse import AuditQuery, AuditRecord, DocumentFile, NamespaceCount
from abathur_memory.core.principal import Principal
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite.readable import readable_sql
from abathur_memory.store.sqlite.timestamps import to_iso


def namespaces(
    conn: driver.Connection, principal: Principal, prefix: str | None, after: str, limit: int
) -> list[NamespaceCount]:
    condition, params = readable_sql(principal, prefix, column="namespace")
    found = conn.execute(
        "SELECT namespace, count(DISTINCT key) FROM memory_entries"
        f" WHERE is_deleted = 0 AND namespace > ? AND {condition}"
        " GROUP BY namespace ORDER BY namespace LIMIT ?",
        [after, *params, limit],
    )
    return [NamespaceCount(namespace=r[0], keys=int(r[1])) for r in found]


def audit_page(
    conn: driver.Connection, query: AuditQuery, before_id: int | None, limit: int
) -> list[AuditRecord]:
    clauses: list[str] = []
    params: list[Any] = []
    if before_id is not None:
        clauses.append("id < ?")
        params.append(before_id)
    if query.actor is not None:
        clauses.append("actor = ?")
        params.append(query.actor)
    if query.action is not None:
        clauses.append("action_type = ?")
        params.append(query.action)
    if query.denied:
        clauses.append("result = 'denied'")
    if query.namespace is not None and query.key is not None:
        ids = list(query.entry_ids)
        marks = ", ".join("?" for _ in ids)
        mine = f"memory_entry_id IN ({marks}) OR " if ids else ""
        clauses.append(
            f"({mine}(memory_namespace = ? AND memory_entry_id IS NULL"
            " AND json_extract(action_data, '$.key') = ?))"
        )
        params.extend([*ids, query.namespace, query.key])
    elif query.namespace is not None:
        clauses.append("memory_namespace = ?")
        params.append(query.namespace)
    where = " AND ".join(clauses) or "1"
    found = conn.execute(
        "SELECT id, timestamp, actor, action_type, result, memory_operation_type,"
        f" memory_namespace, memory_entry_id, action_data FROM audit WHERE {where}"
        " ORDER BY id DESC LIMIT ?",
        [*params, limit],
    )
    return [
        AuditRecord(
            id=r[0],
            timestamp=to_iso(r[1]) or "",
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


def _object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}


def record(conn: driver.Connection, actor: str, action: str, data: dict[str, object]) -> int:
    row = conn.execute(
        "INSERT INTO audit (action_type, action_data, result, actor) VALUES (?, ?, 'ok', ?)"
        " RETURNING id",
        (action, json.dumps(data, ensure_ascii=False, separators=(",", ":")), actor),
    ).fetchone()
    return int(row[0])


def deltas(conn: driver.Connection, session_id: str, end_seq: int) -> list[dict[str, object]]:
    found = conn.execute(
        "SELECT state_delta FROM session_events WHERE session_id = ? AND seq <= ?"
        " AND state_delta IS NOT NULL ORDER BY seq",
        (session_id, end_seq),
    )
    return [json.loads(r[0]) for r in found]


def files(
    conn: driver.Connection, root_id: int, status: str | None, after: str, limit: int
) -> list[DocumentFile]:
    which = " AND sync_status = ?" if status is not None else ""
    found = conn.execute(
        "SELECT id, file_path, title, sync_status, size_bytes, last_synced_at, updated_at,"
        " metadata FROM document_index WHERE root_id = ? AND file_path > ?"
        f"{which} ORDER BY file_path LIMIT ?",
        [root_id, after, *([status] if status is not None else []), limit],
    )
    return [
        DocumentFile(
            id=r[0],
            path=r[1],
            title=r[2],
            status=r[3],
            size_bytes=r[4],
            last_synced_at=to_iso(r[5]),
            updated_at=to_iso(r[6]) or "",
            error=(_object(r[7]) or {}).get("error") if r[3] == "failed" else None,
        )
        for r in found
    ]
