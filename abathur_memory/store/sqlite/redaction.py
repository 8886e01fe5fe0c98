"""Redaction and erasure on SQLite.

A redacted version keeps its row (who wrote it, when, its number) with its value erased
(JSON null), its metadata emptied and who redacted it when; its search text and vectors go
with it, and the indexer indexes what is left (the key). Erasing a principal removes its
memories (every version), links, sessions with their events, and tasks with their
checkpoints; the audit keeps one row saying so.
"""

from __future__ import annotations

from typing import Any

from abathur_memory.core.records import MemoryEntry
from abathur_memory.errors import NotFound
from abathur_memory.store.sqlite import audit_rows, rows, timestamps
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.driver import Connection
from abathur_memory.store.sqlite.spaces import bump_generation, live_spaces


def _drop_index_rows(conn: Connection, entry_ids: list[int]) -> None:
    """Take entries out of the keyword index and every vector table."""
    if not entry_ids:
        return
    marks = ",".join("?" for _ in entry_ids)
    conn.execute(f"DELETE FROM memory_fts WHERE rowid IN ({marks})", entry_ids)
    conn.execute(f"DELETE FROM memory_fts_keys WHERE entry_id IN ({marks})", entry_ids)
    conn.execute(f"DELETE FROM consolidation_vectors WHERE entry_id IN ({marks})", entry_ids)
    for space in live_spaces(conn):
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            (space.memory_vectors,),
        ).fetchone()
        if (
            exists
            and conn.execute(
                f"DELETE FROM {space.memory_vectors} WHERE entry_id IN ({marks})", entry_ids
            ).rowcount
        ):
            bump_generation(conn, space)


def redact(conn: Connection, namespace: str, key: str, version: int, actor: str) -> MemoryEntry:
    row = conn.execute(
        "SELECT id, redacted_at FROM memory_entries WHERE namespace = ? AND key = ?"
        " AND version = ?",
        (namespace, key, version),
    ).fetchone()
    if row is None:
        raise NotFound(f"no memory {namespace}/{key} version {version}")
    if row["redacted_at"] is None:
        conn.execute(
            "UPDATE memory_entries SET value = 'null', metadata = '{}', redacted_at = ?,"
            " redacted_by = ? WHERE id = ?",
            (timestamps.now_db(), actor, row["id"]),
        )
        _drop_index_rows(conn, [row["id"]])
        audit_rows.record_memory(
            conn,
            operation="update",  # the indexer re-indexes the key from it
            namespace=namespace,
            entry_id=row["id"],
            actor=actor,
            action="memory_redact",
            data={"key": key, "version": version},
        )
    return rows.memory(
        conn.execute("SELECT * FROM memory_entries WHERE id = ?", (row["id"],)).fetchone()
    )


def erase_user(conn: Connection, user: str, actor: str) -> dict[str, Any]:
    """Everything of ``user``: namespaces user:<user>[:...], sessions it owns (and their
    session:<id> namespaces), tasks of those sessions or created by it."""
    root = f"user:{user}"
    sessions = [r[0] for r in conn.execute("SELECT id FROM sessions WHERE user_id = ?", (user,))]
    where = "(namespace = ? OR (namespace > ? AND namespace < ?))"
    spaces: list[Any] = [root, root + ":", root + ";"]
    for session in sessions:
        where += " OR (namespace = ? OR (namespace > ? AND namespace < ?))"
        spaces += [f"session:{session}", f"session:{session}:", f"session:{session};"]
    where = f"({where})"
    ids = [r[0] for r in conn.execute(f"SELECT id FROM memory_entries WHERE {where}", spaces)]
    link_where = (
        where.replace("namespace", "from_namespace")
        + " OR "
        + where.replace("namespace", "to_namespace")
    )
    links = conn.execute(f"DELETE FROM memory_links WHERE {link_where}", spaces + spaces).rowcount
    _drop_index_rows(conn, ids)
    conn.execute(
        "UPDATE audit SET memory_entry_id = NULL WHERE memory_entry_id IN"
        f" (SELECT id FROM memory_entries WHERE {where})",
        spaces,
    )
    memories = conn.execute(f"DELETE FROM memory_entries WHERE {where}", spaces).rowcount
    actor_name = f"user:{user}"
    task_ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM tasks WHERE created_by = ? OR session_id IN"
            " (SELECT id FROM sessions WHERE user_id = ?)",
            (actor_name, user),
        )
    ]
    marks = ",".join("?" for _ in task_ids)
    checkpoints = 0
    tasks = 0
    if task_ids:
        checkpoints = conn.execute(
            f"DELETE FROM checkpoints WHERE task_id IN ({marks})", task_ids
        ).rowcount
        conn.execute(
            f"UPDATE tasks SET parent_task_id = NULL WHERE parent_task_id IN ({marks})", task_ids
        )
        tasks = conn.execute(f"DELETE FROM tasks WHERE id IN ({marks})", task_ids).rowcount
    events = conn.execute(
        "DELETE FROM session_events WHERE session_id IN"
        " (SELECT id FROM sessions WHERE user_id = ?)",
        (user,),
    ).rowcount
    removed_sessions = conn.execute("DELETE FROM sessions WHERE user_id = ?", (user,)).rowcount
    counts = {
        "memory_versions": memories,
        "links": links,
        "sessions": removed_sessions,
        "session_events": events,
        "tasks": tasks,
        "checkpoints": checkpoints,
    }
    audit_rows.record_memory(
        conn,
        operation="delete",
        namespace=root,
        entry_id=None,
        actor=actor,
        action="erase_user",
        data={"user": user, **counts},
    )
    return counts


class SqliteRedactionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def redact(self, namespace: str, key: str, version: int, actor: str) -> MemoryEntry:
        return await self.db.write(redact, namespace, key, version, actor)

    async def erase_user(self, user: str, actor: str) -> dict[str, Any]:
        return await self.db.write(erase_user, user, actor)
