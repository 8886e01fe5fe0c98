"""The keyword index and the vectors of live memories, on SQLite.

Every memory change writes an audit row in its own transaction, so the audit table is the
change log: the keyword index (memory_fts) is brought up to date from the audit rows after
the last one applied, and the vectors of a space follow the keyword index. The cursor
(``meta.memory_index_audit_id``) is the id of the last audit row applied, or ``-1`` when
the keyword index must be rebuilt from the live memories (a new or upgraded database, or a
repair).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from abathur_memory.core.memory_text import memory_text
from abathur_memory.core.search import MemoryVectorPart, UnembeddedMemory
from abathur_memory.core.spaces import Space
from abathur_memory.core.values import decode
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite import queries as hot_queries
from abathur_memory.store.sqlite.chunks import encoded
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.spaces import bump_generation

CURSOR_KEY = "memory_index_audit_id"
REBUILD = -1  # cursor value: rebuild the keyword index from the live memories
AUDIT_BATCH = 5000


def keyword_cursor(conn: driver.Connection) -> int:
    """The last audit row applied to the keyword index (REBUILD: none, rebuild first)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)).fetchone()
    return int(row[0]) if row else REBUILD


def changes_behind(conn: driver.Connection, cap: int = 10_000) -> int:
    """How many memory changes the keyword index has not applied yet (counted up to ``cap``;
    a pending rebuild counts as ``cap``)."""
    cursor = keyword_cursor(conn)
    if cursor == REBUILD:
        return cap
    return int(
        conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM audit WHERE id > ?"
            " AND memory_operation_type IS NOT NULL LIMIT ?)",
            (cursor, cap),
        ).fetchone()[0]
    )


def keywords_behind(conn: driver.Connection) -> bool:
    """True when memories changed since the keyword index was last brought up to date."""
    cursor = keyword_cursor(conn)
    if cursor == REBUILD:
        return True
    last = conn.execute("SELECT COALESCE(max(id), 0) FROM audit").fetchone()[0]
    return bool(last > cursor)


def sync_keywords(conn: driver.Connection) -> int:
    """Apply the memory changes since the last sync to memory_fts; returns keys updated.

    Runs in a write transaction. A pending rebuild indexes every live memory first.
    """
    cursor = keyword_cursor(conn)
    if cursor == REBUILD:
        return _rebuild(conn)
    updated = 0
    while True:
        changes = conn.execute(
            "SELECT a.id, m.namespace, m.key FROM audit AS a"
            " JOIN memory_entries AS m ON m.id = a.memory_entry_id"
            " WHERE a.id > ? AND a.memory_operation_type IS NOT NULL ORDER BY a.id LIMIT ?",
            (cursor, AUDIT_BATCH),
        ).fetchall()
        if not changes:
            break
        for address in dict.fromkeys((c[1], c[2]) for c in changes):
            updated += _refresh_key(conn, *address)
        cursor = changes[-1][0]
    last = conn.execute("SELECT COALESCE(max(id), 0) FROM audit").fetchone()[0]
    _set_cursor(conn, max(cursor, last))
    return updated


def _rebuild(conn: driver.Connection) -> int:
    conn.execute("DELETE FROM memory_fts")
    conn.execute("DELETE FROM memory_fts_keys")
    live = conn.execute(
        "SELECT m.id, m.namespace, m.key, m.value FROM memory_entries AS m"
        " WHERE m.is_deleted = 0 AND m.version = (SELECT MAX(v.version) FROM memory_entries"
        " AS v WHERE v.namespace = m.namespace AND v.key = m.key)"
    ).fetchall()
    for entry_id, namespace, key, value in live:
        _index(conn, entry_id, namespace, key, value)
    # Everything up to the newest audit row is now reflected (the transaction holds the write
    # lock, so no change can slip in between the read of the live rows and this one).
    last = conn.execute("SELECT COALESCE(max(id), 0) FROM audit").fetchone()[0]
    _set_cursor(conn, last)
    return len(live)


def _refresh_key(conn: driver.Connection, namespace: str, key: str) -> int:
    mapped = conn.execute(
        "SELECT entry_id FROM memory_fts_keys WHERE namespace = ? AND key = ?", (namespace, key)
    ).fetchone()
    live = conn.execute(
        hot_queries.MEMORY_GET_LATEST, {"namespace": namespace, "key": key}
    ).fetchone()
    if mapped is not None and (live is None or live["id"] != mapped[0]):
        conn.execute("DELETE FROM memory_fts WHERE rowid = ?", (mapped[0],))
        conn.execute(
            "DELETE FROM memory_fts_keys WHERE namespace = ? AND key = ?", (namespace, key)
        )
        mapped = None
    if live is not None and mapped is None:
        _index(conn, live["id"], namespace, key, live["value"])
        return 1
    return 0


def _index(conn: driver.Connection, entry_id: int, namespace: str, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO memory_fts (rowid, namespace, key, text) VALUES (?, ?, ?, ?)",
        (entry_id, namespace, key, memory_text(key, decode(value))),
    )
    conn.execute(
        "INSERT INTO memory_fts_keys (namespace, key, entry_id) VALUES (?, ?, ?)",
        (namespace, key, entry_id),
    )


def _set_cursor(conn: driver.Connection, value: int) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
        f" value = excluded.value, updated_at = {timestamps.SQL_NOW}",
        (CURSOR_KEY, str(value)),
    )


def rebuild_keywords(conn: driver.Connection) -> int:
    """Start the keyword index over (doctor --repair)."""
    return _rebuild(conn)


def request_rebuild(conn: driver.Connection) -> None:
    """Have the next catch-up rebuild the keyword index (after a salvage, say)."""
    _set_cursor(conn, REBUILD)


def _missing_vectors_sql(space: Space) -> str:
    return (
        f"SELECT k.entry_id, k.key, f.text FROM memory_fts_keys AS k"
        f" JOIN memory_fts AS f ON f.rowid = k.entry_id"
        f" WHERE NOT EXISTS (SELECT 1 FROM {space.memory_vectors} AS v"
        f"                   WHERE v.entry_id = k.entry_id) LIMIT ?"
    )


def vectors_behind(conn: driver.Connection, space: Space | None, cap: int = 10_000) -> int:
    """How many indexed memories ``space`` has no vectors for yet (counted up to ``cap``);
    with no space yet, every indexed memory."""
    if space is None:
        return int(
            conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM memory_fts_keys LIMIT ?)", (cap,)
            ).fetchone()[0]
        )
    return int(
        conn.execute(f"SELECT count(*) FROM ({_missing_vectors_sql(space)})", (cap,)).fetchone()[0]
    )


def _has_stale_vectors(conn: driver.Connection, space: Space) -> bool:
    row = conn.execute(
        f"SELECT 1 FROM {space.memory_vectors} AS v WHERE NOT EXISTS"
        " (SELECT 1 FROM memory_fts_keys AS k WHERE k.entry_id = v.entry_id) LIMIT 1"
    ).fetchone()
    return row is not None


def _drop_stale_vectors(conn: driver.Connection, space: Space) -> None:
    removed = conn.execute(
        f"DELETE FROM {space.memory_vectors} WHERE entry_id NOT IN"
        " (SELECT entry_id FROM memory_fts_keys)"
    ).rowcount
    if removed:
        bump_generation(conn, space)


def _write_vectors(
    conn: driver.Connection, space: Space, parts: Sequence[MemoryVectorPart]
) -> None:
    rows = []
    for part in parts:
        embedding, code = encoded(part.vector)
        text_hash = hashlib.sha256(part.text.encode()).hexdigest()
        rows.append((part.entry_id, part.part, text_hash, embedding, code))
    conn.executemany(
        f"INSERT OR REPLACE INTO {space.memory_vectors}"
        " (entry_id, part, text_hash, embedding, code) VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    bump_generation(conn, space)


def pending(conn: driver.Connection, space: Space | None) -> int:
    """Changes the keyword index has not applied plus memories ``space`` has no vector for."""
    return changes_behind(conn) + vectors_behind(conn, space)


class SqliteMemoryIndexStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def behind(self) -> bool:
        return await self.db.read(keywords_behind)

    async def sync_keywords(self) -> int:
        return await self.db.write(sync_keywords)

    async def request_rebuild(self) -> None:
        await self.db.write(request_rebuild)

    async def unembedded(self, space: Space, limit: int) -> list[UnembeddedMemory]:
        rows = await self.db.fetchall(_missing_vectors_sql(space), (limit,))
        return [UnembeddedMemory(row[0], row[1], row[2]) for row in rows]

    async def has_stale_vectors(self, space: Space) -> bool:
        return await self.db.read(_has_stale_vectors, space)

    async def drop_stale_vectors(self, space: Space) -> None:
        await self.db.write(_drop_stale_vectors, space)

    async def write_vectors(self, space: Space, parts: Sequence[MemoryVectorPart]) -> None:
        await self.db.write(_write_vectors, space, parts)
