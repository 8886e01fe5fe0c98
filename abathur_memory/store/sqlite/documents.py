"""document_index on SQLite: scans applied, work leased, chunks written, status counted,
indexing processes' heartbeats."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from abathur_memory.core.browse import DocumentFile
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
from abathur_memory.store.sqlite import browse, chunks, driver, spaces, timestamps
from abathur_memory.store.sqlite.database import Database

LEASE_SECONDS = 300

_CLAIM = f"""
UPDATE document_index
SET lease_owner = :owner,
    lease_until = strftime('%Y-%m-%d %H:%M:%f', 'now', '+{LEASE_SECONDS} seconds')
WHERE id IN (
    SELECT d.id FROM document_index AS d
    WHERE d.root_id IS NOT NULL
      AND (d.sync_status IN ('pending', 'stale')
           OR (d.sync_status = 'failed' AND d.next_attempt_at IS NOT NULL
               AND d.next_attempt_at <= {timestamps.SQL_NOW}))
      AND (d.lease_until IS NULL OR d.lease_until < {timestamps.SQL_NOW})
      AND NOT EXISTS (SELECT 1 FROM space_documents AS sd
                      WHERE sd.space_id = :space AND sd.document_id = d.id
                        AND sd.content_hash = d.content_hash)
      {{scope}}
    ORDER BY d.id
    LIMIT :limit)
RETURNING id, root_id, file_path, content_hash, size_bytes
"""

_REMAINING = """
SELECT count(*), COALESCE(sum(d.size_bytes), 0) FROM document_index AS d
WHERE d.root_id IS NOT NULL AND d.sync_status != 'failed'
  AND NOT EXISTS (SELECT 1 FROM space_documents AS sd
                  WHERE sd.space_id = :space AND sd.document_id = d.id
                    AND sd.content_hash = d.content_hash)
  {scope}
"""

# Documents of the same scope another process is indexing right now (its lease is live).
_HELD_ELSEWHERE = f"""
SELECT count(*) FROM document_index AS d
WHERE d.root_id IS NOT NULL AND d.lease_owner IS NOT NULL AND d.lease_owner != :owner
  AND d.lease_until > {timestamps.SQL_NOW}
  {{scope}}
"""

_STATE_COLUMNS = "id, file_path, size_bytes, mtime_ns, content_hash, sync_status"


def _scope(scope: WorkScope) -> str:
    """SQL restricting the work to some roots or documents (ids are integers we made)."""
    if scope.document_ids is not None:
        return f"AND d.id IN ({','.join(str(int(i)) for i in scope.document_ids) or 'NULL'})"
    if scope.root_ids is not None:
        return f"AND d.root_id IN ({','.join(str(int(i)) for i in scope.root_ids) or 'NULL'})"
    return ""


def _marks(ids: Sequence[Any]) -> str:
    return ",".join("?" for _ in ids) or "NULL"


def _state(row: driver.Row) -> DocumentState:
    return DocumentState(
        id=row["id"],
        file_path=row["file_path"],
        size_bytes=row["size_bytes"],
        mtime_ns=row["mtime_ns"],
        content_hash=row["content_hash"] or "",
        sync_status=row["sync_status"],
    )


def _apply_scan(conn: driver.Connection, changes: ScanChanges) -> None:
    for moved in changes.moved:
        conn.execute(
            "UPDATE document_index SET file_path = ?, size_bytes = ?, mtime_ns = ?,"
            f" updated_at = {timestamps.SQL_NOW} WHERE id = ?",
            (moved.file_path, moved.size_bytes, moved.mtime_ns, moved.id),
        )
    for new in changes.new:
        conn.execute(
            "INSERT INTO document_index (file_path, title, content_hash, sync_status,"
            " root_id, size_bytes, mtime_ns, chunk_count)"
            " VALUES (?, ?, ?, 'pending', ?, ?, ?, 0)",
            (
                new.file_path,
                new.title,
                new.content_hash,
                changes.root_id,
                new.size_bytes,
                new.mtime_ns,
            ),
        )
    for touched in changes.touched:
        conn.execute(
            "UPDATE document_index SET size_bytes = ?, mtime_ns = ? WHERE id = ?",
            (touched.size_bytes, touched.mtime_ns, touched.id),
        )
    for changed in changes.changed:
        conn.execute(
            "UPDATE document_index SET content_hash = ?, size_bytes = ?, mtime_ns = ?,"
            " sync_status = CASE WHEN sync_status = 'pending' THEN 'pending' ELSE 'stale' END,"
            " attempts = 0, next_attempt_at = NULL,"
            " metadata = json_remove(COALESCE(metadata, '{}'), '$.error'),"
            f" updated_at = {timestamps.SQL_NOW} WHERE id = ?",
            (changed.content_hash, changed.size_bytes, changed.mtime_ns, changed.id),
        )
    for failed in changes.failed:
        if failed.id is None:
            conn.execute(
                "INSERT INTO document_index (file_path, title, content_hash, sync_status,"
                " root_id, size_bytes, mtime_ns, metadata, chunk_count)"
                " VALUES (?, ?, '', 'failed', ?, ?, ?, ?, 0)",
                (
                    failed.file_path,
                    failed.title,
                    changes.root_id,
                    failed.size_bytes,
                    failed.mtime_ns,
                    json.dumps({"error": failed.error}),
                ),
            )
        else:
            conn.execute(
                "UPDATE document_index SET sync_status = 'failed', size_bytes = ?,"
                " mtime_ns = ?, metadata = json_set(COALESCE(metadata, '{}'), '$.error', ?),"
                f" updated_at = {timestamps.SQL_NOW} WHERE id = ?",
                (failed.size_bytes, failed.mtime_ns, failed.error, failed.id),
            )
    conn.executemany("DELETE FROM document_index WHERE id = ?", [(i,) for i in changes.deleted])
    conn.execute(
        f"UPDATE doc_roots SET last_scan_at = {timestamps.SQL_NOW} WHERE id = ?",
        (changes.root_id,),
    )


def _claim(
    conn: driver.Connection,
    space_id: int,
    owner: str,
    limit: int,
    scope: WorkScope,
    dead_owner: Callable[[str], bool],
) -> list[ClaimedDocument]:
    live_owners = conn.execute(
        "SELECT DISTINCT lease_owner FROM document_index WHERE lease_owner IS NOT NULL"
        f" AND lease_until > {timestamps.SQL_NOW}"
    ).fetchall()
    for (other,) in live_owners:
        if dead_owner(other):
            conn.execute(
                "UPDATE document_index SET lease_owner = NULL, lease_until = NULL"
                " WHERE lease_owner = ?",
                (other,),
            )
    rows = conn.execute(
        _CLAIM.format(scope=_scope(scope)),
        {"owner": owner, "space": space_id, "limit": limit},
    ).fetchall()
    return [
        ClaimedDocument(
            id=row["id"],
            root_id=row["root_id"],
            file_path=row["file_path"],
            content_hash=row["content_hash"],
            size_bytes=row["size_bytes"] or 0,
        )
        for row in rows
    ]


def _release(conn: driver.Connection, document_ids: list[int], owner: str) -> None:
    conn.executemany(
        "UPDATE document_index SET lease_owner = NULL, lease_until = NULL"
        " WHERE id = ? AND lease_owner = ?",
        [(i, owner) for i in document_ids],
    )


def _finish_rebuild(conn: driver.Connection, space: Space) -> bool:
    remaining = conn.execute(_REMAINING.format(scope=""), {"space": space.id}).fetchone()[0]
    if remaining:
        return False
    spaces.activate(conn, space)
    conn.execute(
        "UPDATE document_index SET sync_status = 'synced', embedding_model = ?,"
        " chunk_count = (SELECT chunk_count FROM space_documents AS sd"
        "   WHERE sd.space_id = ? AND sd.document_id = document_index.id)"
        " WHERE id IN (SELECT sd.document_id FROM space_documents AS sd"
        "   WHERE sd.space_id = ? AND sd.content_hash = document_index.content_hash)",
        (space.identity.model_id, space.id, space.id),
    )
    return True


def _forget_space(conn: driver.Connection, space: Space, root_ids: Sequence[int] | None) -> None:
    if root_ids is not None:
        marks = _marks(root_ids)
        conn.execute(
            "DELETE FROM space_documents WHERE space_id = ? AND document_id IN"
            f" (SELECT id FROM document_index WHERE root_id IN ({marks}))",
            [space.id, *root_ids],
        )
        conn.execute(
            "UPDATE document_index SET sync_status = 'stale', attempts = 0, next_attempt_at = NULL"
            f" WHERE root_id IN ({marks}) AND sync_status != 'pending'",
            list(root_ids),
        )
    else:
        conn.execute("DELETE FROM space_documents WHERE space_id = ?", (space.id,))
        conn.execute(
            "UPDATE document_index SET sync_status = 'stale', attempts = 0, next_attempt_at = NULL"
            " WHERE root_id IS NOT NULL AND sync_status != 'pending'"
        )


def _failure(row: driver.Row) -> DocumentFailure:
    return DocumentFailure(row["file_path"], json.loads(row["metadata"] or "{}").get("error"))


def _failures(conn: driver.Connection, root_ids: Sequence[int] | None) -> list[DocumentFailure]:
    where = "" if root_ids is None else f" AND root_id IN ({_marks(root_ids)})"
    return [
        _failure(r)
        for r in conn.execute(
            f"SELECT file_path, metadata FROM document_index WHERE sync_status = 'failed'{where}"
            " ORDER BY updated_at DESC",
            list(root_ids or []),
        )
    ]


def _counts(conn: driver.Connection, root_ids: Sequence[int]) -> IndexCounts:
    ids = list(root_ids)
    marks = _marks(ids)
    by_root: dict[int, dict[str, int]] = {root_id: {} for root_id in ids}
    for root_id, status, count in conn.execute(
        "SELECT root_id, sync_status, count(*) FROM document_index"
        f" WHERE root_id IN ({marks}) GROUP BY root_id, sync_status",
        ids,
    ):
        by_root[root_id][status] = count
    pending = conn.execute(
        "SELECT count(*), min(updated_at) FROM document_index"
        f" WHERE sync_status IN ('pending', 'stale') AND root_id IN ({marks})",
        ids,
    ).fetchone()
    failures = [
        _failure(r)
        for r in conn.execute(
            "SELECT file_path, metadata FROM document_index WHERE sync_status = 'failed'"
            f" AND root_id IN ({marks}) ORDER BY updated_at DESC LIMIT 20",
            ids,
        )
    ]
    failed_total = conn.execute(
        "SELECT count(*) FROM document_index WHERE sync_status = 'failed'"
        f" AND root_id IN ({marks})",
        ids,
    ).fetchone()[0]
    last_sync = conn.execute(
        f"SELECT max(last_synced_at) FROM document_index WHERE root_id IN ({marks})", ids
    ).fetchone()[0]
    documents = conn.execute(
        f"SELECT count(*) FROM document_index WHERE root_id IN ({marks})", ids
    ).fetchone()[0]
    active = spaces.active_space(conn)
    chunk_count = 0
    if active is not None:
        chunk_count = conn.execute(
            f"SELECT count(*) FROM {active.chunks} AS c JOIN document_index AS d"
            f" ON d.id = c.document_id WHERE d.root_id IN ({marks})",
            ids,
        ).fetchone()[0]
    building = spaces.building_space(conn)
    rebuild_done = None
    if building is not None:
        rebuild_done = conn.execute(
            "SELECT count(*) FROM space_documents AS sd JOIN document_index AS d"
            f" ON d.id = sd.document_id WHERE sd.space_id = ? AND d.root_id IN ({marks})",
            [building.id, *ids],
        ).fetchone()[0]
    return IndexCounts(
        by_root=by_root,
        pending=pending[0],
        oldest_pending_since=timestamps.to_iso(pending[1]),
        failed_count=failed_total,
        failed=failures,
        last_sync_at=timestamps.to_iso(last_sync),
        chunks=chunk_count,
        rebuild_done=rebuild_done,
        documents=documents,
    )


def _heartbeats(conn: driver.Connection) -> list[Heartbeat]:
    rows = conn.execute(
        "SELECT *, (julianday('now') - julianday(beat_at)) * 86400 AS silent_s"
        " FROM indexer_heartbeats ORDER BY beat_at DESC"
    ).fetchall()
    return [
        Heartbeat(
            owner=row["owner"],
            kind=row["kind"],
            pid=row["pid"],
            host=row["host"],
            roots=json.loads(row["roots"]),
            beat_at=timestamps.to_iso(row["beat_at"]) or "",
            seconds_since_beat=float(row["silent_s"]),
            last_event_at=timestamps.to_iso(row["last_event_at"]),
            last_indexed_at=timestamps.to_iso(row["last_indexed_at"]),
        )
        for row in rows
    ]


class SqliteDocumentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def states(self, root_id: int, file_path: str | None = None) -> list[DocumentState]:
        if file_path is None:
            rows = await self.db.fetchall(
                f"SELECT {_STATE_COLUMNS} FROM document_index WHERE root_id = ?", (root_id,)
            )
        else:
            rows = await self.db.fetchall(
                f"SELECT {_STATE_COLUMNS} FROM document_index WHERE root_id = ? AND file_path = ?",
                (root_id, file_path),
            )
        return [_state(row) for row in rows]

    async def apply_scan(self, changes: ScanChanges) -> None:
        await self.db.write(_apply_scan, changes)

    async def indexed_file(self, file_path: str) -> IndexedFile | None:
        row = await self.db.fetchone(
            "SELECT id, file_path, title, size_bytes, mtime_ns FROM document_index"
            " WHERE file_path = ?",
            (file_path,),
        )
        if row is None:
            return None
        return IndexedFile(
            row["id"], row["file_path"], row["title"], row["size_bytes"], row["mtime_ns"]
        )

    async def remaining(self, space_id: int, scope: WorkScope) -> tuple[int, int]:
        row = await self.db.fetchone(_REMAINING.format(scope=_scope(scope)), {"space": space_id})
        assert row is not None  # an aggregate without GROUP BY always returns one row
        return int(row[0]), int(row[1])

    async def claim(
        self,
        space_id: int,
        owner: str,
        limit: int,
        scope: WorkScope,
        dead_owner: Callable[[str], bool],
    ) -> list[ClaimedDocument]:
        return await self.db.write(_claim, space_id, owner, limit, scope, dead_owner)

    async def held_elsewhere(self, owner: str, scope: WorkScope) -> int:
        row = await self.db.fetchone(_HELD_ELSEWHERE.format(scope=_scope(scope)), {"owner": owner})
        assert row is not None
        return int(row[0])

    async def release(self, document_ids: Sequence[int], owner: str) -> None:
        await self.db.write(_release, list(document_ids), owner)

    async def delete(self, document_id: int) -> None:
        await self.db.execute_write("DELETE FROM document_index WHERE id = ?", (document_id,))

    async def mark_failed(self, document_id: int, reason: str, *, transient: bool) -> None:
        await self.db.write(chunks.mark_failed, document_id, reason, transient=transient)

    async def reusable_vectors(self, space: Space, text_hashes: set[str]) -> dict[str, Vector]:
        return await self.db.read(chunks.reusable_vectors, space, text_hashes)

    async def write(
        self, space: Space, documents: Sequence[IndexedDocument], vectors: dict[str, Vector]
    ) -> None:
        await self.db.write(chunks.write_documents, space, documents, vectors)

    async def finish_rebuild(self, space: Space) -> bool:
        return await self.db.write(_finish_rebuild, space)

    async def forget_space(self, space: Space, root_ids: Sequence[int] | None) -> None:
        await self.db.write(_forget_space, space, root_ids)

    async def failures(self, root_ids: Sequence[int] | None) -> list[DocumentFailure]:
        return await self.db.read(_failures, root_ids)

    async def counts(self, root_ids: Sequence[int]) -> IndexCounts:
        return await self.db.read(_counts, root_ids)

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
        sets = [f"beat_at = {timestamps.SQL_NOW}", "roots = excluded.roots"]
        if started:
            sets.append(f"started_at = {timestamps.SQL_NOW}")
        params: list[Any] = [
            owner,
            kind,
            os.getpid(),
            socket.gethostname(),
            json.dumps(list(roots)),
        ]
        for column, age in (("last_event_at", event_age_s), ("last_indexed_at", indexed_age_s)):
            if age is not None:
                sets.append(f"{column} = strftime('%Y-%m-%d %H:%M:%f', 'now', ?)")
                params.append(f"-{max(0.0, age):.3f} seconds")
        await self.db.execute_write(
            "INSERT INTO indexer_heartbeats (owner, kind, pid, host, roots)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(owner) DO UPDATE SET " + ", ".join(sets),
            params,
        )

    async def forget_beat(self, owner: str) -> None:
        await self.db.execute_write("DELETE FROM indexer_heartbeats WHERE owner = ?", (owner,))

    async def heartbeats(self) -> list[Heartbeat]:
        return await self.db.read(_heartbeats)

    async def files(
        self, root_id: int, status: str | None, after: str, limit: int
    ) -> list[DocumentFile]:
        return await self.db.read(browse.files, root_id, status, after, limit)
