"""The keyword index and the vectors of live memories, on PostgreSQL.

As on SQLite, the audit log is the change log. Identity values are handed out before
commit, though, so an audit row with a lower id can become visible after one with a higher
id: a cursor over ids would skip it. Each audit row records its transaction (``tx``), and
the index remembers the snapshot it has applied (``meta.memory_index_snapshot``): the rows
not visible in that snapshot are exactly the changes left to apply. ``'rebuild'`` means
the index must be rebuilt from the live memories (a new or migrated database, a repair).

One indexer works at a time per database: the others find the advisory lock taken and
leave the round to it. The round's snapshot is taken after the lock (READ COMMITTED, the lock
in its own statement): a snapshot taken by the locking statement itself could predate the
commit of the indexer that held the lock a moment before, and redo its work (a duplicate
key in ``memory_search_index``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from abathur_memory.core.memory_text import memory_text
from abathur_memory.core.search import MemoryVectorPart, UnembeddedMemory
from abathur_memory.core.spaces import Space
from abathur_memory.store.postgres import spaces
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.times import SQL_NOW

SNAPSHOT_KEY = "memory_index_snapshot"
REBUILD = "rebuild"
BATCH = 5000
_TRY_LOCK = (
    "SELECT pg_try_advisory_xact_lock("
    "hashtextextended('abathur-memory memory index ' || current_schema(), 0))"
)
# Changes since the applied snapshot: rows of transactions not visible in it. Rows of
# transactions older than its xmin were all visible, so the index on tx narrows the scan.
_SINCE = """
FROM audit AS a
WHERE a.memory_operation_type IS NOT NULL
  AND a.tx >= pg_snapshot_xmin(%(snapshot)s::pg_snapshot)
  AND NOT pg_visible_in_snapshot(a.tx, %(snapshot)s::pg_snapshot)
"""
_CHANGED_KEYS = """
SELECT DISTINCT m.namespace, m.key FROM audit AS a
JOIN memory_entries AS m ON m.id = a.memory_entry_id
WHERE a.memory_operation_type IS NOT NULL
  AND a.tx >= pg_snapshot_xmin(%(snapshot)s::pg_snapshot)
  AND NOT pg_visible_in_snapshot(a.tx, %(snapshot)s::pg_snapshot)
"""
_LATEST_LIVE = """
SELECT id, value FROM memory_entries
WHERE namespace = %s AND key = %s AND NOT is_deleted
ORDER BY version DESC LIMIT 1
"""


async def _snapshot(conn: Conn) -> str:
    row = await (
        await conn.execute("SELECT value FROM meta WHERE key = %s", (SNAPSHOT_KEY,))
    ).fetchone()
    return str(row[0]) if row else REBUILD


async def _set_snapshot(conn: Conn, value: str) -> None:
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET"
        f" value = excluded.value, updated_at = {SQL_NOW}",
        (SNAPSHOT_KEY, value),
    )


async def _advance_snapshot(conn: Conn, applied: str, value: str) -> None:
    """``value`` as the applied snapshot unless it changed since it was read as ``applied``
    (a rebuild requested meanwhile stays requested)."""
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (%(key)s, %(value)s) ON CONFLICT (key) DO UPDATE"
        f" SET value = excluded.value, updated_at = {SQL_NOW} WHERE meta.value = %(applied)s",
        {"key": SNAPSHOT_KEY, "value": value, "applied": applied},
    )


async def changes_behind(conn: Conn, cap: int = 10_000) -> int:
    """Memory changes the keyword index has not applied (up to ``cap``; a rebuild: cap)."""
    snapshot = await _snapshot(conn)
    if snapshot == REBUILD:
        return cap
    row = await (
        await conn.execute(
            f"SELECT count(*) FROM (SELECT 1 {_SINCE} LIMIT %(cap)s) AS behind",
            {"snapshot": snapshot, "cap": cap},
        )
    ).fetchone()
    return int(row[0]) if row else 0


async def vectors_behind(conn: Conn, space: Space | None, cap: int = 10_000) -> int:
    """Indexed memories ``space`` has no vector for (all of them with no space yet)."""
    if space is None:
        sql = "SELECT count(*) FROM (SELECT 1 FROM memory_search_index LIMIT %s) AS n"
    else:
        sql = f"SELECT count(*) FROM ({_missing_sql(space)}) AS n"
    row = await (await conn.execute(sql, (cap,))).fetchone()
    return int(row[0]) if row else 0


def _missing_sql(space: Space) -> str:
    return (
        "SELECT k.entry_id, k.key, k.text FROM memory_search_index AS k"
        f" WHERE NOT EXISTS (SELECT 1 FROM {space.memory_vectors} AS v"
        "                   WHERE v.entry_id = k.entry_id) ORDER BY k.entry_id LIMIT %s"
    )


async def _refresh_key(conn: Conn, namespace: str, key: str) -> int:
    """Point the key's index row at its latest live version (or drop it)."""
    latest = await (await conn.execute(_LATEST_LIVE, (namespace, key))).fetchone()
    live_id = latest[0] if latest is not None else None
    mapped = await (
        await conn.execute(
            "SELECT entry_id FROM memory_search_index WHERE namespace = %s AND key = %s",
            (namespace, key),
        )
    ).fetchone()
    if mapped is not None and mapped[0] == live_id:
        return 0
    await conn.execute(
        "DELETE FROM memory_search_index WHERE namespace = %s AND key = %s", (namespace, key)
    )
    if live_id is None or latest is None:
        return 0
    await conn.execute(
        "INSERT INTO memory_search_index (entry_id, namespace, key, text) VALUES (%s, %s, %s, %s)",
        (live_id, namespace, key, memory_text(key, latest[1])),
    )
    return 1


async def _rebuild(conn: Conn) -> int:
    await conn.execute("DELETE FROM memory_search_index")
    live = await (
        await conn.execute(
            "SELECT DISTINCT ON (namespace, key) id, namespace, key, value, is_deleted"
            " FROM memory_entries ORDER BY namespace, key, version DESC"
        )
    ).fetchall()
    rows = [
        (entry_id, namespace, key, memory_text(key, value))
        for entry_id, namespace, key, value, deleted in live
        if not deleted
    ]
    if rows:
        await conn.cursor().executemany(
            "INSERT INTO memory_search_index (entry_id, namespace, key, text)"
            " VALUES (%s, %s, %s, %s)",
            rows,
        )
    return len(rows)


async def sync_keywords(conn: Conn) -> int:
    """Apply what changed since the applied snapshot, in one transaction holding the
    indexer's lock; the snapshot current once the lock is held becomes the new one. Returns
    the keys updated (0 when another indexer holds the lock).

    READ COMMITTED: every statement after the lock sees at least that snapshot, so what it
    holds is applied; what committed later may be applied too, and is applied again (to the
    same result) next round."""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        locked = await (await conn.execute(_TRY_LOCK)).fetchone()
        if not locked or not locked[0]:
            return 0
        now = await (await conn.execute("SELECT pg_current_snapshot()::text")).fetchone()
        assert now is not None
        applied = await _snapshot(conn)
        if applied == REBUILD:
            updated = await _rebuild(conn)
        else:
            changed = await (await conn.execute(_CHANGED_KEYS, {"snapshot": applied})).fetchall()
            updated = 0
            for namespace, key in changed:
                updated += await _refresh_key(conn, namespace, key)
        await _advance_snapshot(conn, applied, str(now[0]))
        return updated


async def _behind(conn: Conn) -> bool:
    snapshot = await _snapshot(conn)
    if snapshot == REBUILD:
        return True
    query = f"SELECT EXISTS (SELECT 1 {_SINCE})"
    row = await (await conn.execute(query, {"snapshot": snapshot})).fetchone()
    return bool(row and row[0])


class PostgresMemoryIndexStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def behind(self) -> bool:
        return await self.db.run(_behind, what="reading the memory index")

    async def sync_keywords(self) -> int:
        return await self.db.run(sync_keywords, what="updating the memory index")

    async def request_rebuild(self) -> None:
        async def work(conn: Conn) -> None:
            await _set_snapshot(conn, REBUILD)

        await self.db.run(work)

    async def unembedded(self, space: Space, limit: int) -> list[UnembeddedMemory]:
        rows = await self.db.fetchall(_missing_sql(space), (limit,))
        return [UnembeddedMemory(row[0], row[1], row[2]) for row in rows]

    async def has_stale_vectors(self, space: Space) -> bool:
        row = await self.db.fetchone(
            f"SELECT EXISTS (SELECT 1 FROM {space.memory_vectors} AS v WHERE NOT EXISTS"
            " (SELECT 1 FROM memory_search_index AS k WHERE k.entry_id = v.entry_id))"
        )
        return bool(row and row[0])

    async def drop_stale_vectors(self, space: Space) -> None:
        async def work(conn: Conn) -> None:
            cur = await conn.execute(
                f"DELETE FROM {space.memory_vectors} AS v WHERE NOT EXISTS"
                " (SELECT 1 FROM memory_search_index AS k WHERE k.entry_id = v.entry_id)"
            )
            if cur.rowcount:
                await spaces.bump_generation(conn, space)

        await self.db.transaction(work, what="dropping stale memory vectors")

    async def write_vectors(self, space: Space, parts: Sequence[MemoryVectorPart]) -> None:
        rows = [
            (p.entry_id, p.part, hashlib.sha256(p.text.encode()).hexdigest(), p.vector)
            for p in parts
        ]

        async def work(conn: Conn) -> None:
            await conn.cursor().executemany(
                f"INSERT INTO {space.memory_vectors} (entry_id, part, text_hash, embedding)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (entry_id, part) DO UPDATE SET"
                " text_hash = excluded.text_hash, embedding = excluded.embedding",
                rows,
            )
            await spaces.bump_generation(conn, space)

        await self.db.transaction(work, what="writing memory vectors")
