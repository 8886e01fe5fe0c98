"""Export's reads and import's one write, on SQLite.

An import is one ``BEGIN IMMEDIATE`` transaction: what the database holds of the file's
records is read, the service's ``decide`` turns it into writes, and they are written with
their audit rows. Rows keep the times and actors the file gives them; the audit rows are
the importing principal's, stamped now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from abathur_memory.core.records import MemoryLink
from abathur_memory.core.search import MemoryScope
from abathur_memory.core.transfer import (
    IMPORT_ACTION,
    MEMORY_IMPORT_ACTION,
    Decide,
    Held,
    Wanted,
    Writes,
)
from abathur_memory.store.sqlite import audit_rows, rows
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.driver import Connection
from abathur_memory.store.sqlite.links import link_of
from abathur_memory.store.sqlite.readable import readable_sql
from abathur_memory.store.transfer_columns import (
    SESSION_CHANGEABLE_FROM,
    checkpoint_columns,
    event_columns,
    json_text,
    link_columns,
    session_columns,
    task_columns,
)

BATCH = 5000
_LATEST_LIVE = (
    " AND m.is_deleted = 0 AND m.version = (SELECT MAX(v.version) FROM memory_entries AS v"
    " WHERE v.namespace = m.namespace AND v.key = m.key)"
)


def _stored(iso: str | None) -> str | None:
    """A record's time ('2026-01-02T03:04:05.678Z') in the stored form."""
    return None if iso is None else iso.rstrip("Z").replace("T", " ", 1)


def _batches(items: Sequence[Any]) -> list[str]:
    return [json_text(list(items[i : i + BATCH])) for i in range(0, len(items), BATCH)]


class SqliteTransferStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def memory_versions(
        self, scope: MemoryScope, with_history: bool, after: tuple[str, str, int], limit: int
    ) -> list[Any]:
        where, params = readable_sql(scope.principal, scope.prefix, "m.namespace")
        sql = (
            "SELECT m.* FROM memory_entries AS m"
            f" WHERE (m.namespace, m.key, m.version) > (?, ?, ?) AND {where}"
            f"{'' if with_history else _LATEST_LIVE}"
            " ORDER BY m.namespace, m.key, m.version LIMIT ?"
        )
        found = await self.db.fetchall(sql, [*after, *params, limit])
        return [rows.memory(r) for r in found]

    async def count_memory_versions(self, scope: MemoryScope, with_history: bool) -> int:
        where, params = readable_sql(scope.principal, scope.prefix, "m.namespace")
        sql = (
            f"SELECT count(*) FROM memory_entries AS m WHERE {where}"
            f"{'' if with_history else _LATEST_LIVE}"
        )
        row = await self.db.fetchone(sql, params)
        return int(row[0]) if row else 0

    async def links(self, after_id: int, limit: int) -> list[MemoryLink]:
        found = await self.db.fetchall(
            "SELECT * FROM memory_links WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        )
        return [link_of(r) for r in found]

    async def held(self, wanted: Wanted) -> Held:
        return await self.db.read(_read_held, wanted)

    async def apply(self, wanted: Wanted, decide: Decide, actor: str) -> Writes:
        def run(conn: Connection) -> Writes:
            writes = decide(_read_held(conn, wanted))
            if not writes.empty:
                _write(conn, writes, actor)
            return writes

        return await self.db.write(run)


def _read_held(conn: Connection, wanted: Wanted) -> Held:
    held = Held()
    for batch in _batches(wanted.keys):
        for row in conn.execute(
            "SELECT m.* FROM json_each(?) AS w CROSS JOIN memory_entries AS m"
            " ON m.namespace = w.value ->> 0 AND m.key = w.value ->> 1"
            " ORDER BY m.namespace, m.key, m.version",
            (batch,),
        ):
            held.versions.setdefault((row["namespace"], row["key"]), []).append(rows.memory(row))
    for batch in _batches(wanted.session_ids):
        for row in conn.execute(
            "SELECT * FROM sessions WHERE id IN (SELECT value FROM json_each(?))", (batch,)
        ):
            held.sessions[row["id"]] = rows.session(row)
        for row in conn.execute(
            "SELECT * FROM session_events WHERE session_id IN (SELECT value FROM json_each(?))"
            " ORDER BY session_id, seq",
            (batch,),
        ):
            held.events.setdefault(row["session_id"], []).append(rows.event(row))
    for batch in _batches(wanted.task_ids):
        for row in conn.execute(
            "SELECT * FROM tasks WHERE id IN (SELECT value FROM json_each(?))", (batch,)
        ):
            held.tasks[row["id"]] = rows.task(row)
    for batch in _batches(wanted.checkpoints):
        for row in conn.execute(
            "SELECT c.* FROM json_each(?) AS w CROSS JOIN checkpoints AS c"
            " ON c.task_id = w.value ->> 0 AND c.iteration = w.value ->> 1",
            (batch,),
        ):
            held.checkpoints[(row["task_id"], row["iteration"])] = rows.checkpoint(row)
    for batch in _batches(wanted.link_keys):
        for row in conn.execute(
            "SELECT * FROM memory_links WHERE (from_namespace, from_key) IN"
            " (SELECT value ->> 0, value ->> 1 FROM json_each(?)) ORDER BY id",
            (batch,),
        ):
            held.links.append(link_of(row))
    held.links.sort(key=lambda link: link.id)
    return held


def _write(conn: Connection, writes: Writes, actor: str) -> None:
    conn.executemany(
        "INSERT INTO sessions (id, app_name, user_id, project_id, status, state, metadata,"
        " last_seq, created_at, last_update_time, terminated_at, archived_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [session_columns(s, _stored) for s in writes.sessions],
    )
    conn.executemany(
        "UPDATE sessions SET project_id = ?, status = ?, state = ?, metadata = ?, last_seq = ?,"
        " created_at = ?, last_update_time = ?, terminated_at = ?, archived_at = ? WHERE id = ?",
        [
            (*session_columns(s, _stored)[SESSION_CHANGEABLE_FROM:], s.id)
            for s in writes.session_updates
        ],
    )
    conn.executemany(
        "INSERT INTO session_events (session_id, seq, event_type, actor, content, state_delta,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [event_columns(session_id, e, _stored) for session_id, e in writes.events],
    )
    audit: list[tuple[str, str, int, str]] = []
    for v in writes.versions:
        entry_id = conn.execute(
            "INSERT INTO memory_entries (namespace, key, value, memory_type, version, is_deleted,"
            " metadata, created_by, updated_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                v.namespace,
                v.key,
                v.value_text,
                v.memory_type,
                v.version,
                int(v.is_deleted),
                v.metadata_text,
                v.created_by,
                v.updated_by,
                _stored(v.created_at),
                _stored(v.updated_at),
            ),
        ).lastrowid
        audit.append(
            (v.operation, v.namespace, entry_id, json_text({"key": v.key, "version": v.version}))
        )
    for d in writes.deletions:
        row = conn.execute(
            "UPDATE memory_entries SET is_deleted = 1, updated_at = ?, updated_by = ?"
            " WHERE namespace = ? AND key = ? AND version = ? RETURNING id",
            (_stored(d.updated_at), d.updated_by, d.namespace, d.key, d.version),
        ).fetchone()
        audit.append(
            ("delete", d.namespace, row[0], json_text({"key": d.key, "version": d.version}))
        )
    audit_rows.record_memory_many(conn, action=MEMORY_IMPORT_ACTION, actor=actor, rows=audit)
    for link in writes.links:  # one by one: in the file's order, so ids keep it
        conn.execute(
            "INSERT INTO memory_links (link_type, from_namespace, from_key, from_version,"
            " to_namespace, to_key, to_version, to_session, seq_start, seq_end, holds_until,"
            " reason, metadata, run_id, created_by, created_at, removed_at, removed_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            link_columns(link, _stored),
        )
    conn.executemany(
        "UPDATE memory_links SET removed_at = ?, removed_by = ? WHERE id = ?"
        " AND removed_at IS NULL",
        [(_stored(r.removed_at), r.removed_by, r.link_id) for r in writes.link_removals],
    )
    conn.executemany(
        "INSERT INTO tasks (id, prompt, agent_type, priority, status, input_data, result_data,"
        " error_message, retry_count, max_retries, max_execution_timeout_seconds, submitted_at,"
        " started_at, completed_at, last_updated_at, created_by, parent_task_id, dependencies,"
        " session_id, claimed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " ?, ?)",
        [task_columns(t, _stored) for t in writes.tasks],
    )
    conn.executemany(
        "UPDATE tasks SET prompt = ?, agent_type = ?, priority = ?, status = ?, input_data = ?,"
        " result_data = ?, error_message = ?, retry_count = ?, max_retries = ?,"
        " max_execution_timeout_seconds = ?, submitted_at = ?, started_at = ?, completed_at = ?,"
        " last_updated_at = ?, created_by = ?, parent_task_id = ?, dependencies = ?,"
        " session_id = ?, claimed_by = ? WHERE id = ?",
        [(*task_columns(t, _stored)[1:], t.id) for t in writes.task_updates],
    )
    conn.executemany(
        "INSERT INTO checkpoints (task_id, iteration, state, created_at, session_id)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (task_id, iteration) DO UPDATE SET"
        " state = excluded.state, created_at = excluded.created_at,"
        " session_id = excluded.session_id",
        [checkpoint_columns(c, _stored) for c in writes.checkpoints],
    )
    conn.execute(
        "INSERT INTO audit (action_type, action_data, result, actor) VALUES (?, ?, 'ok', ?)",
        (IMPORT_ACTION, json_text(writes.summary), actor),
    )
