"""Export's reads and import's one write, on PostgreSQL.

An import is one transaction: it takes the locks every memory write takes (puts.py) for
the file's keys, reads the file's sessions and tasks ``FOR NO KEY UPDATE``, lets the
service's ``decide`` turn what it read into writes, and writes them with their audit rows
(memory versions and their audit rows in one statement per batch). Rows keep the times
and actors the file gives them; the audit rows are the importing principal's, stamped now.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from abathur_memory.core.records import MemoryEntry, MemoryLink
from abathur_memory.core.search import MemoryScope
from abathur_memory.core.transfer import (
    IMPORT_ACTION,
    MEMORY_IMPORT_ACTION,
    Decide,
    Held,
    Wanted,
    Writes,
)
from abathur_memory.store.postgres import rows
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.links import LINK, link_of
from abathur_memory.store.postgres.puts import BATCH_TEXT_MAX, lock_keys
from abathur_memory.store.postgres.readable import readable_sql
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
    " AND NOT m.is_deleted AND m.version = (SELECT max(v.version) FROM memory_entries AS v"
    " WHERE v.namespace = m.namespace AND v.key = m.key)"
)
_INSERT_VERSIONS = f"""
WITH given AS (
    SELECT * FROM jsonb_to_recordset(%(batch)s::jsonb) AS r(
        namespace text, key text, version bigint, value_text text, memory_type text,
        metadata_text text, is_deleted boolean, created_by text, updated_by text,
        created_at timestamptz, updated_at timestamptz, operation text)
), inserted AS (
    INSERT INTO memory_entries (namespace, key, value, memory_type, version, metadata,
                                is_deleted, created_by, updated_by, created_at, updated_at)
    SELECT namespace, key, value_text::jsonb, memory_type, version, metadata_text::jsonb,
           is_deleted,
           created_by, updated_by, created_at, updated_at
    FROM given
    RETURNING id, namespace, key, version
)
INSERT INTO audit (action_type, action_data, result, memory_operation_type,
                   memory_namespace, memory_entry_id, actor)
SELECT '{MEMORY_IMPORT_ACTION}', jsonb_build_object('key', i.key, 'version', i.version), 'ok',
       g.operation, i.namespace, i.id, %(actor)s
FROM inserted AS i
JOIN given AS g ON g.namespace = i.namespace AND g.key = i.key AND g.version = i.version
ORDER BY i.id
"""
_DELETE_VERSIONS = f"""
WITH given AS (
    SELECT * FROM jsonb_to_recordset(%(batch)s::jsonb) AS r(
        namespace text, key text, version bigint, updated_at timestamptz, updated_by text)
), deleted AS (
    UPDATE memory_entries AS m
    SET is_deleted = true, updated_at = g.updated_at, updated_by = g.updated_by
    FROM given AS g
    WHERE m.namespace = g.namespace AND m.key = g.key AND m.version = g.version
    RETURNING m.id, m.namespace, m.key, m.version
)
INSERT INTO audit (action_type, action_data, result, memory_operation_type,
                   memory_namespace, memory_entry_id, actor)
SELECT '{MEMORY_IMPORT_ACTION}', jsonb_build_object('key', d.key, 'version', d.version), 'ok',
       'delete', d.namespace, d.id, %(actor)s
FROM deleted AS d ORDER BY d.id
"""
_SESSION_VALUES = (
    "%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s::timestamptz, %s::timestamptz,"
    " %s::timestamptz, %s::timestamptz"
)
_TASK_SET = (
    "prompt = %s, agent_type = %s, priority = %s, status = %s, input_data = %s::jsonb,"
    " result_data = %s::jsonb, error_message = %s, retry_count = %s, max_retries = %s,"
    " max_execution_timeout_seconds = %s, submitted_at = %s::timestamptz,"
    " started_at = %s::timestamptz, completed_at = %s::timestamptz,"
    " last_updated_at = %s::timestamptz, created_by = %s, parent_task_id = %s,"
    " dependencies = %s::jsonb, session_id = %s, claimed_by = %s"
)


def _as_given(iso: str | None) -> str | None:
    return iso  # timestamptz takes the records' ISO text as it is


def _chunks(items: Sequence[Any], size: Any) -> list[list[Any]]:
    """``items`` in lists of at most BATCH, and at most BATCH_TEXT_MAX characters by
    ``size`` (PostgreSQL caps a jsonb value)."""
    out: list[list[Any]] = []
    chunk: list[Any] = []
    total = 0
    for item in items:
        length = size(item)
        if chunk and (len(chunk) >= BATCH or total + length > BATCH_TEXT_MAX):
            out.append(chunk)
            chunk, total = [], 0
        chunk.append(item)
        total += length
    if chunk:
        out.append(chunk)
    return out


class PostgresTransferStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def memory_versions(
        self, scope: MemoryScope, with_history: bool, after: tuple[str, str, int], limit: int
    ) -> list[MemoryEntry]:
        where, params = readable_sql(scope.principal, scope.prefix, "m.namespace")
        sql = (
            f"SELECT {rows.columns(rows.MEMORY, 'm')} FROM memory_entries AS m"
            f" WHERE (m.namespace, m.key, m.version) > (%s, %s, %s) AND {where}"
            f"{'' if with_history else _LATEST_LIVE}"
            " ORDER BY m.namespace, m.key, m.version LIMIT %s"
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
            f"SELECT {LINK} FROM memory_links WHERE id > %s ORDER BY id LIMIT %s",
            (after_id, limit),
        )
        return [link_of(r) for r in found]

    async def held(self, wanted: Wanted) -> Held:
        async def read(conn: Conn) -> Held:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return await _read_held(conn, wanted, lock=False)

        return await self.db.run(read, what="reading")

    async def apply(self, wanted: Wanted, decide: Decide, actor: str) -> Writes:
        async def run(conn: Conn) -> Writes:
            await lock_keys(conn, wanted.keys)
            writes = decide(await _read_held(conn, wanted, lock=True))
            if not writes.empty:
                await _write(conn, writes, actor)
            return writes

        writes = await self.db.transaction(run, what="importing")
        statistics = self.db.statistics
        statistics.wrote(len(writes.versions), "memory_entries", "audit")
        statistics.wrote(len(writes.events), "session_events")
        statistics.wrote(len(writes.sessions), "sessions")
        statistics.wrote(len(writes.tasks), "tasks")
        return writes


async def _read_held(conn: Conn, wanted: Wanted, *, lock: bool) -> Held:
    held = Held()
    locked = " FOR NO KEY UPDATE" if lock else ""
    for batch in _chunks(wanted.keys, lambda _: 0):
        cur = await conn.execute(
            f"SELECT {rows.columns(rows.MEMORY, 'm')} FROM memory_entries AS m"
            " JOIN jsonb_array_elements(%s::jsonb) AS w"
            " ON m.namespace = w ->> 0 AND m.key = w ->> 1"
            " ORDER BY m.namespace, m.key, m.version",
            (json_text(batch),),
        )
        for row in await cur.fetchall():
            entry = rows.memory(row)
            held.versions.setdefault((entry.namespace, entry.key), []).append(entry)
    for batch in _chunks(wanted.session_ids, lambda _: 0):
        cur = await conn.execute(
            f"SELECT {rows.SESSION} FROM sessions WHERE id = ANY(%s) ORDER BY id{locked}",
            (batch,),
        )
        for row in await cur.fetchall():
            session = rows.session(row)
            held.sessions[session.id] = session
        cur = await conn.execute(
            f"SELECT session_id, {rows.EVENT} FROM session_events WHERE session_id = ANY(%s)"
            " ORDER BY session_id, seq",
            (batch,),
        )
        for row in await cur.fetchall():
            held.events.setdefault(row[0], []).append(rows.event(row[1:]))
    for batch in _chunks(wanted.task_ids, lambda _: 0):
        cur = await conn.execute(
            f"SELECT {rows.TASK} FROM tasks WHERE id = ANY(%s) ORDER BY id{locked}", (batch,)
        )
        for row in await cur.fetchall():
            task = rows.task(row)
            held.tasks[task.id] = task
    for batch in _chunks(wanted.checkpoints, lambda _: 0):
        cur = await conn.execute(
            f"SELECT {rows.columns(rows.CHECKPOINT, 'c')} FROM checkpoints AS c"
            " JOIN jsonb_array_elements(%s::jsonb) AS w"
            " ON c.task_id = w ->> 0 AND c.iteration = (w ->> 1)::bigint",
            (json_text(batch),),
        )
        for row in await cur.fetchall():
            checkpoint = rows.checkpoint(row)
            held.checkpoints[(checkpoint.task_id, checkpoint.iteration)] = checkpoint
    for batch in _chunks(wanted.link_keys, lambda _: 0):
        cur = await conn.execute(
            f"SELECT {LINK} FROM memory_links WHERE (from_namespace, from_key) IN"
            " (SELECT w ->> 0, w ->> 1 FROM jsonb_array_elements(%s::jsonb) AS w) ORDER BY id",
            (json_text(batch),),
        )
        held.links += [link_of(row) for row in await cur.fetchall()]
    held.links.sort(key=lambda link: link.id)
    return held


def _text_size(v: Any) -> int:
    return len(v.value_text) + len(v.metadata_text)


async def _many(conn: Conn, sql: str, params: list[tuple[Any, ...]]) -> None:
    if params:
        async with conn.cursor() as cur:
            await cur.executemany(sql, params)


async def _write(conn: Conn, writes: Writes, actor: str) -> None:
    await _many(
        conn,
        "INSERT INTO sessions (id, app_name, user_id, project_id, status, state, metadata,"
        " last_seq, created_at, last_update_time, terminated_at, archived_at)"
        f" VALUES ({_SESSION_VALUES})",
        [session_columns(s, _as_given) for s in writes.sessions],
    )
    await _many(
        conn,
        "UPDATE sessions SET project_id = %s, status = %s, state = %s::jsonb,"
        " metadata = %s::jsonb, last_seq = %s, created_at = %s::timestamptz,"
        " last_update_time = %s::timestamptz, terminated_at = %s::timestamptz,"
        " archived_at = %s::timestamptz WHERE id = %s",
        [
            (*session_columns(s, _as_given)[SESSION_CHANGEABLE_FROM:], s.id)
            for s in writes.session_updates
        ],
    )
    await _many(
        conn,
        "INSERT INTO session_events (session_id, seq, event_type, actor, content, state_delta,"
        " created_at) VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::timestamptz)",
        [event_columns(session_id, e, _as_given) for session_id, e in writes.events],
    )
    for chunk in _chunks(writes.versions, _text_size):
        batch = json.dumps([asdict(v) for v in chunk], ensure_ascii=False)
        await conn.execute(_INSERT_VERSIONS, {"batch": batch, "actor": actor})
    for chunk in _chunks(writes.deletions, lambda _: 0):
        batch = json.dumps([asdict(d) for d in chunk], ensure_ascii=False)
        await conn.execute(_DELETE_VERSIONS, {"batch": batch, "actor": actor})
    for link in writes.links:  # one by one: in the file's order, so ids keep it
        await conn.execute(
            "INSERT INTO memory_links (link_type, from_namespace, from_key, from_version,"
            " to_namespace, to_key, to_version, to_session, seq_start, seq_end, holds_until,"
            " reason, metadata, run_id, created_by, created_at, removed_at, removed_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::timestamptz, %s, %s::jsonb,"
            " %s, %s, %s::timestamptz, %s::timestamptz, %s)",
            link_columns(link, _as_given),
        )
    await _many(
        conn,
        "UPDATE memory_links SET removed_at = %s::timestamptz, removed_by = %s"
        " WHERE id = %s AND removed_at IS NULL",
        [(r.removed_at, r.removed_by, r.link_id) for r in writes.link_removals],
    )
    await _many(
        conn,
        "INSERT INTO tasks (id, prompt, agent_type, priority, status, input_data, result_data,"
        " error_message, retry_count, max_retries, max_execution_timeout_seconds, submitted_at,"
        " started_at, completed_at, last_updated_at, created_by, parent_task_id, dependencies,"
        " session_id, claimed_by) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s,"
        " %s, %s::timestamptz, %s::timestamptz, %s::timestamptz, %s::timestamptz, %s, %s,"
        " %s::jsonb, %s, %s)",
        [task_columns(t, _as_given) for t in writes.tasks],
    )
    await _many(
        conn,
        f"UPDATE tasks SET {_TASK_SET} WHERE id = %s",
        [(*task_columns(t, _as_given)[1:], t.id) for t in writes.task_updates],
    )
    await _many(
        conn,
        "INSERT INTO checkpoints (task_id, iteration, state, created_at, session_id)"
        " VALUES (%s, %s, %s::jsonb, %s::timestamptz, %s) ON CONFLICT (task_id, iteration)"
        " DO UPDATE SET state = excluded.state, created_at = excluded.created_at,"
        " session_id = excluded.session_id",
        [checkpoint_columns(c, _as_given) for c in writes.checkpoints],
    )
    await conn.execute(
        "INSERT INTO audit (action_type, action_data, result, actor)"
        " VALUES (%s, %s::jsonb, 'ok', %s)",
        (IMPORT_ACTION, json_text(writes.summary), actor),
    )
