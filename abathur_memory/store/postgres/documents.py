"""document_index on PostgreSQL: scans applied, work leased (``FOR UPDATE SKIP LOCKED``, so
indexers on several hosts never take the same document), chunks written, status counted,
indexing processes' heartbeats. The rules are SQLite's (store/sqlite/documents.py)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from abathur_memory.core.browse import DocumentFile
from abathur_memory.core.cjk import index_grams
from abathur_memory.core.documents import (
    ClaimedDocument,
    DocumentFailure,
    DocumentState,
    Heartbeat,
    IndexCounts,
    IndexedDocument,
    IndexedFile,
    ScanChanges,
    Vector,
    WorkScope,
)
from abathur_memory.core.spaces import Space
from abathur_memory.store.postgres import browse, spaces
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.times import SQL_NOW

LEASE_SECONDS = 300
RETRY_BASE_S = 30
RETRY_MAX_S = 24 * 3600

_NEEDS_WORK = f"""
d.root_id IS NOT NULL
AND (d.sync_status IN ('pending', 'stale')
     OR (d.sync_status = 'failed' AND d.next_attempt_at IS NOT NULL
         AND d.next_attempt_at <= {SQL_NOW}))
AND NOT EXISTS (SELECT 1 FROM space_documents AS sd
                WHERE sd.space_id = %(space)s AND sd.document_id = d.id
                  AND sd.content_hash = d.content_hash)
"""

_CLAIM = f"""
UPDATE document_index AS t
SET lease_owner = %(owner)s, lease_until = {SQL_NOW} + make_interval(secs => {LEASE_SECONDS})
WHERE t.id IN (
    SELECT d.id FROM document_index AS d
    WHERE {_NEEDS_WORK}
      AND (d.lease_until IS NULL OR d.lease_until < {SQL_NOW})
      {{scope}}
    ORDER BY d.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING t.id, t.root_id, t.file_path, t.content_hash, t.size_bytes
"""

_REMAINING = """
SELECT count(*), COALESCE(sum(d.size_bytes), 0) FROM document_index AS d
WHERE d.root_id IS NOT NULL AND d.sync_status != 'failed'
  AND NOT EXISTS (SELECT 1 FROM space_documents AS sd
                  WHERE sd.space_id = %(space)s AND sd.document_id = d.id
                    AND sd.content_hash = d.content_hash)
  {scope}
"""

_HELD_ELSEWHERE = f"""
SELECT count(*) FROM document_index AS d
WHERE d.root_id IS NOT NULL AND d.lease_owner IS NOT NULL AND d.lease_owner != %(owner)s
  AND d.lease_until > {SQL_NOW}
  {{scope}}
"""

_STATE_COLUMNS = "id, file_path, size_bytes, mtime_ns, content_hash, sync_status"


def _scope(scope: WorkScope) -> tuple[str, dict[str, Any]]:
    if scope.document_ids is not None:
        return "AND d.id = ANY(%(scope_ids)s)", {"scope_ids": list(scope.document_ids)}
    if scope.root_ids is not None:
        return "AND d.root_id = ANY(%(scope_ids)s)", {"scope_ids": list(scope.root_ids)}
    return "", {}


def _state(row: Sequence[Any]) -> DocumentState:
    return DocumentState(
        id=row[0],
        file_path=row[1],
        size_bytes=row[2],
        mtime_ns=row[3],
        content_hash=row[4] or "",
        sync_status=row[5],
    )


async def _apply_scan(conn: Conn, changes: ScanChanges) -> None:
    cur = conn.cursor()
    if changes.moved:
        await cur.executemany(
            "UPDATE document_index SET file_path = %s, size_bytes = %s, mtime_ns = %s,"
            f" updated_at = {SQL_NOW} WHERE id = %s",
            [(m.file_path, m.size_bytes, m.mtime_ns, m.id) for m in changes.moved],
        )
    if changes.new:
        await cur.executemany(
            "INSERT INTO document_index (file_path, title, content_hash, sync_status,"
            " root_id, size_bytes, mtime_ns, chunk_count)"
            " VALUES (%s, %s, %s, 'pending', %s, %s, %s, 0)",
            [
                (n.file_path, n.title, n.content_hash, changes.root_id, n.size_bytes, n.mtime_ns)
                for n in changes.new
            ],
        )
    if changes.touched:
        await cur.executemany(
            "UPDATE document_index SET size_bytes = %s, mtime_ns = %s WHERE id = %s",
            [(t.size_bytes, t.mtime_ns, t.id) for t in changes.touched],
        )
    if changes.changed:
        await cur.executemany(
            "UPDATE document_index SET content_hash = %s, size_bytes = %s, mtime_ns = %s,"
            " sync_status = CASE WHEN sync_status = 'pending' THEN 'pending' ELSE 'stale' END,"
            " attempts = 0, next_attempt_at = NULL,"
            " metadata = COALESCE(metadata, '{}') - 'error',"
            f" updated_at = {SQL_NOW} WHERE id = %s",
            [(c.content_hash, c.size_bytes, c.mtime_ns, c.id) for c in changes.changed],
        )
    for failed in changes.failed:
        if failed.id is None:
            await conn.execute(
                "INSERT INTO document_index (file_path, title, content_hash, sync_status,"
                " root_id, size_bytes, mtime_ns, metadata, chunk_count)"
                " VALUES (%s, %s, '', 'failed', %s, %s, %s, %s, 0)",
                (
                    failed.file_path,
                    failed.title,
                    changes.root_id,
                    failed.size_bytes,
                    failed.mtime_ns,
                    Jsonb({"error": failed.error}),
                ),
            )
        else:
            await conn.execute(
                "UPDATE document_index SET sync_status = 'failed', size_bytes = %s,"
                " mtime_ns = %s,"
                " metadata = jsonb_set(COALESCE(metadata, '{}'), '{error}', to_jsonb(%s::text)),"
                f" updated_at = {SQL_NOW} WHERE id = %s",
                (failed.size_bytes, failed.mtime_ns, failed.error, failed.id),
            )
    if changes.deleted:
        await conn.execute(
            "DELETE FROM document_index WHERE id = ANY(%s)", (list(changes.deleted),)
        )
    await conn.execute(
        f"UPDATE doc_roots SET last_scan_at = {SQL_NOW} WHERE id = %s", (changes.root_id,)
    )


async def _claim(
    conn: Conn,
    space_id: int,
    owner: str,
    limit: int,
    scope: WorkScope,
    dead_owner: Callable[[str], bool],
) -> list[ClaimedDocument]:
    owners = await (
        await conn.execute(
            "SELECT DISTINCT lease_owner FROM document_index WHERE lease_owner IS NOT NULL"
            f" AND lease_until > {SQL_NOW}"
        )
    ).fetchall()
    dead = [other for (other,) in owners if dead_owner(other)]
    if dead:
        await conn.execute(
            "UPDATE document_index SET lease_owner = NULL, lease_until = NULL"
            " WHERE lease_owner = ANY(%s)",
            (dead,),
        )
    where, params = _scope(scope)
    rows = await (
        await conn.execute(
            _CLAIM.format(scope=where),
            {"owner": owner, "space": space_id, "limit": limit, **params},
        )
    ).fetchall()
    return [
        ClaimedDocument(
            id=row[0],
            root_id=row[1],
            file_path=row[2],
            content_hash=row[3],
            size_bytes=row[4] or 0,
        )
        for row in sorted(rows)
    ]


async def _write(
    conn: Conn, space: Space, documents: Sequence[IndexedDocument], by_hash: dict[str, Vector]
) -> None:
    cur = conn.cursor()
    for document in documents:
        if document.content_changed:
            await conn.execute(
                "UPDATE document_index SET content_hash = %s, size_bytes = %s, mtime_ns = %s"
                " WHERE id = %s",
                (document.content_hash, document.size_bytes, document.mtime_ns, document.id),
            )
    ids = [d.id for d in documents]
    await conn.execute(f"DELETE FROM {space.chunks} WHERE document_id = ANY(%s)", (ids,))
    chunk_rows = [
        (
            document.id,
            chunk.seq,
            chunk.heading,
            Jsonb(list(chunk.heading_path)),
            chunk.start_line,
            chunk.end_line,
            chunk.text,
            chunk.text_hash,
            chunk.token_count,
            index_grams(chunk.heading, chunk.text),
            by_hash[chunk.text_hash],
        )
        for document in documents
        for chunk in document.parsed.chunks
    ]
    if chunk_rows:
        await cur.executemany(
            f"INSERT INTO {space.chunks} (document_id, seq, heading, heading_path, start_line,"
            " end_line, text, text_hash, token_count, grams, embedding)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            chunk_rows,
        )
    await cur.executemany(
        "INSERT INTO space_documents (space_id, document_id, content_hash, chunk_count)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (space_id, document_id) DO UPDATE SET"
        " content_hash = excluded.content_hash, chunk_count = excluded.chunk_count,"
        f" indexed_at = {SQL_NOW}",
        [(space.id, d.id, d.content_hash, len(d.parsed.chunks)) for d in documents],
    )
    synced = space.status == "active"
    await cur.executemany(
        "UPDATE document_index SET title = %s, document_type = %s, tags = %s, metadata = %s,"
        " attempts = 0, next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL,"
        " chunk_count = CASE WHEN %s THEN %s ELSE chunk_count END,"
        " embedding_model = CASE WHEN %s THEN %s ELSE embedding_model END,"
        " sync_status = CASE WHEN %s AND content_hash = %s THEN 'synced' ELSE sync_status END,"
        f" last_synced_at = CASE WHEN %s THEN {SQL_NOW} ELSE last_synced_at END,"
        f" updated_at = {SQL_NOW} WHERE id = %s",
        [
            (
                d.parsed.title,
                d.parsed.document_type,
                Jsonb(d.parsed.tags),
                Jsonb(d.parsed.metadata()),
                synced,
                len(d.parsed.chunks),
                synced,
                space.identity.model_id,
                synced,
                d.content_hash,
                synced,
                d.id,
            )
            for d in documents
        ],
    )
    await spaces.bump_generation(conn, space)


async def _finish_rebuild(conn: Conn, space: Space) -> bool:
    row = await (await conn.execute(_REMAINING.format(scope=""), {"space": space.id})).fetchone()
    if row is None or row[0]:
        return False
    await spaces.activate(conn, space)
    await conn.execute(
        "UPDATE document_index AS d SET sync_status = 'synced', embedding_model = %s,"
        " chunk_count = sd.chunk_count FROM space_documents AS sd"
        " WHERE sd.space_id = %s AND sd.document_id = d.id AND sd.content_hash = d.content_hash",
        (space.identity.model_id, space.id),
    )
    return True


async def _forget_space(conn: Conn, space: Space, root_ids: Sequence[int] | None) -> None:
    if root_ids is not None:
        ids = list(root_ids)
        await conn.execute(
            "DELETE FROM space_documents WHERE space_id = %s AND document_id IN"
            " (SELECT id FROM document_index WHERE root_id = ANY(%s))",
            (space.id, ids),
        )
        await conn.execute(
            "UPDATE document_index SET sync_status = 'stale', attempts = 0,"
            " next_attempt_at = NULL WHERE root_id = ANY(%s) AND sync_status != 'pending'",
            (ids,),
        )
    else:
        await conn.execute("DELETE FROM space_documents WHERE space_id = %s", (space.id,))
        await conn.execute(
            "UPDATE document_index SET sync_status = 'stale', attempts = 0, next_attempt_at = NULL"
            " WHERE root_id IS NOT NULL AND sync_status != 'pending'"
        )


def _failure(row: Sequence[Any]) -> DocumentFailure:
    return DocumentFailure(row[0], (row[1] or {}).get("error"))


async def _counts(conn: Conn, root_ids: Sequence[int]) -> IndexCounts:
    ids = list(root_ids)
    by_root: dict[int, dict[str, int]] = {root_id: {} for root_id in ids}
    for root_id, status, count in await (
        await conn.execute(
            "SELECT root_id, sync_status, count(*) FROM document_index"
            " WHERE root_id = ANY(%s) GROUP BY root_id, sync_status",
            (ids,),
        )
    ).fetchall():
        by_root[root_id][status] = count
    summary = await (
        await conn.execute(
            "SELECT count(*) FILTER (WHERE sync_status IN ('pending', 'stale')),"
            " min(updated_at) FILTER (WHERE sync_status IN ('pending', 'stale')),"
            " count(*) FILTER (WHERE sync_status = 'failed'), max(last_synced_at), count(*)"
            " FROM document_index WHERE root_id = ANY(%s)",
            (ids,),
        )
    ).fetchone()
    assert summary is not None
    failures = await (
        await conn.execute(
            "SELECT file_path, metadata FROM document_index WHERE sync_status = 'failed'"
            " AND root_id = ANY(%s) ORDER BY updated_at DESC LIMIT 20",
            (ids,),
        )
    ).fetchall()
    active = await spaces.active_space(conn)
    chunk_count = 0
    if active is not None:
        row = await (
            await conn.execute(
                f"SELECT count(*) FROM {active.chunks} AS c JOIN document_index AS d"
                " ON d.id = c.document_id WHERE d.root_id = ANY(%s)",
                (ids,),
            )
        ).fetchone()
        chunk_count = row[0] if row else 0
    building = await spaces.building_space(conn)
    rebuild_done = None
    if building is not None:
        row = await (
            await conn.execute(
                "SELECT count(*) FROM space_documents AS sd JOIN document_index AS d"
                " ON d.id = sd.document_id WHERE sd.space_id = %s AND d.root_id = ANY(%s)",
                (building.id, ids),
            )
        ).fetchone()
        rebuild_done = row[0] if row else 0
    return IndexCounts(
        by_root=by_root,
        pending=summary[0],
        oldest_pending_since=summary[1],
        failed_count=summary[2],
        failed=[_failure(r) for r in failures],
        last_sync_at=summary[3],
        chunks=chunk_count,
        rebuild_done=rebuild_done,
        documents=summary[4],
    )


async def _execute(db: Database, sql: str, params: Sequence[Any] | None = None) -> None:
    """One statement that returns no rows."""

    async def one(conn: Conn) -> None:
        await conn.execute(sql, params)

    await db.run(one)


def _array(value: Any) -> Vector:
    """pgvector's Vector as the float32 array the protocol speaks."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)


class PostgresDocumentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def states(self, root_id: int, file_path: str | None = None) -> list[DocumentState]:
        if file_path is None:
            rows = await self.db.fetchall(
                f"SELECT {_STATE_COLUMNS} FROM document_index WHERE root_id = %s", (root_id,)
            )
        else:
            rows = await self.db.fetchall(
                f"SELECT {_STATE_COLUMNS} FROM document_index WHERE root_id = %s"
                " AND file_path = %s",
                (root_id, file_path),
            )
        return [_state(row) for row in rows]

    async def apply_scan(self, changes: ScanChanges) -> None:
        await self.db.transaction(lambda conn: _apply_scan(conn, changes), what="recording a scan")

    async def indexed_file(self, file_path: str) -> IndexedFile | None:
        row = await self.db.fetchone(
            "SELECT id, file_path, title, size_bytes, mtime_ns FROM document_index"
            " WHERE file_path = %s",
            (file_path,),
        )
        return IndexedFile(*row) if row is not None else None

    async def remaining(self, space_id: int, scope: WorkScope) -> tuple[int, int]:
        where, params = _scope(scope)
        row = await self.db.fetchone(_REMAINING.format(scope=where), {"space": space_id, **params})
        assert row is not None
        return int(row[0]), int(row[1])

    async def claim(
        self,
        space_id: int,
        owner: str,
        limit: int,
        scope: WorkScope,
        dead_owner: Callable[[str], bool],
    ) -> list[ClaimedDocument]:
        return await self.db.transaction(
            lambda conn: _claim(conn, space_id, owner, limit, scope, dead_owner),
            what="claiming documents to index",
        )

    async def held_elsewhere(self, owner: str, scope: WorkScope) -> int:
        where, params = _scope(scope)
        row = await self.db.fetchone(
            _HELD_ELSEWHERE.format(scope=where), {"owner": owner, **params}
        )
        assert row is not None
        return int(row[0])

    async def release(self, document_ids: Sequence[int], owner: str) -> None:
        await _execute(
            self.db,
            "UPDATE document_index SET lease_owner = NULL, lease_until = NULL"
            " WHERE id = ANY(%s) AND lease_owner = %s",
            (list(document_ids), owner),
        )

    async def delete(self, document_id: int) -> None:
        await _execute(self.db, "DELETE FROM document_index WHERE id = %s", (document_id,))

    async def mark_failed(self, document_id: int, reason: str, *, transient: bool) -> None:
        await _execute(
            self.db,
            "UPDATE document_index SET sync_status = 'failed', attempts = attempts + 1,"
            " lease_owner = NULL, lease_until = NULL,"
            " metadata = jsonb_set(COALESCE(metadata, '{}'), '{error}', to_jsonb(%s::text)),"
            f" next_attempt_at = CASE WHEN %s THEN {SQL_NOW} + make_interval(secs =>"
            f"   least({RETRY_MAX_S}, {RETRY_BASE_S} * (1::bigint << least(attempts, 20)))) END,"
            f" updated_at = {SQL_NOW} WHERE id = %s",
            (reason, transient, document_id),
        )

    async def reusable_vectors(self, space: Space, text_hashes: set[str]) -> dict[str, Vector]:
        if not text_hashes:
            return {}
        rows = await self.db.fetchall(
            f"SELECT DISTINCT ON (text_hash) text_hash, embedding FROM {space.chunks}"
            " WHERE text_hash = ANY(%s)",
            (sorted(text_hashes),),
        )
        return {row[0]: _array(row[1]) for row in rows}

    async def write(
        self, space: Space, documents: Sequence[IndexedDocument], vectors: dict[str, Vector]
    ) -> None:
        if not documents:
            return
        await self.db.transaction(
            lambda conn: _write(conn, space, documents, vectors), what="writing chunks"
        )
        chunks = sum(len(document.parsed.chunks) for document in documents)
        self.db.statistics.wrote(chunks, space.chunks, "document_index")

    async def finish_rebuild(self, space: Space) -> bool:
        return await self.db.transaction(
            lambda conn: _finish_rebuild(conn, space), what="activating the rebuilt index"
        )

    async def forget_space(self, space: Space, root_ids: Sequence[int] | None) -> None:
        await self.db.transaction(
            lambda conn: _forget_space(conn, space, root_ids), what="resetting the index"
        )

    async def failures(self, root_ids: Sequence[int] | None) -> list[DocumentFailure]:
        if root_ids is None:
            rows = await self.db.fetchall(
                "SELECT file_path, metadata FROM document_index WHERE sync_status = 'failed'"
                " ORDER BY updated_at DESC"
            )
        else:
            rows = await self.db.fetchall(
                "SELECT file_path, metadata FROM document_index WHERE sync_status = 'failed'"
                " AND root_id = ANY(%s) ORDER BY updated_at DESC",
                (list(root_ids),),
            )
        return [_failure(row) for row in rows]

    async def counts(self, root_ids: Sequence[int]) -> IndexCounts:
        async def work(conn: Conn) -> IndexCounts:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                return await _counts(conn, root_ids)

        return await self.db.run(work, what="reading the index status")

    async def beat(
        self,
        owner: str,
        kind: str,
        roots: Sequence[str],
        *,
        started: bool,
        event_age_s: float | None = None,
        indexed_age_s: float | None = None,
    ) -> None:
        sets = [f"beat_at = {SQL_NOW}", "roots = excluded.roots"]
        if started:
            sets.append(f"started_at = {SQL_NOW}")
        params: list[Any] = [owner, kind, os.getpid(), socket.gethostname(), Jsonb(list(roots))]
        for column, age in (("last_event_at", event_age_s), ("last_indexed_at", indexed_age_s)):
            if age is not None:
                sets.append(
                    f"{column} = date_trunc('milliseconds',"
                    " statement_timestamp() - make_interval(secs => %s))"
                )
                params.append(max(0.0, age))
        await _execute(
            self.db,
            "INSERT INTO indexer_heartbeats (owner, kind, pid, host, roots)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (owner) DO UPDATE SET " + ", ".join(sets),
            params,
        )

    async def forget_beat(self, owner: str) -> None:
        await _execute(self.db, "DELETE FROM indexer_heartbeats WHERE owner = %s", (owner,))

    async def heartbeats(self) -> list[Heartbeat]:
        rows = await self.db.fetchall(
            "SELECT owner, kind, pid, host, roots, beat_at,"
            " extract(epoch FROM clock_timestamp() - beat_at)::float8,"
            " last_event_at, last_indexed_at FROM indexer_heartbeats ORDER BY beat_at DESC"
        )
        return [Heartbeat(*row) for row in rows]

    async def files(
        self, root_id: int, status: str | None, after: str, limit: int
    ) -> list[DocumentFile]:
        return await browse.files(self.db, root_id, status, after, limit)
