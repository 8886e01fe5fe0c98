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

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from abathur_memory.core import memory_units
from abathur_memory.core.memory_text import memory_text
from abathur_memory.core.memory_units import CONTEXT_AFTER, CONTEXT_BEFORE, Neighbour
from abathur_memory.core.search import CONTEXT_PART, MemoryVectorPart, UnembeddedMemory
from abathur_memory.core.spaces import Space
from abathur_memory.store.postgres import spaces
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.times import SQL_NOW, as_datetime

SNAPSHOT_KEY = "memory_index_snapshot"
# The applied snapshot at which a space's vectors were last complete: ``pending`` then
# counts the changes not visible in it instead of scanning every memory on every search.
VECTORS_KEY_PREFIX = "memory_index_vectors_s"
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
SELECT id, value, memory_type FROM memory_entries
WHERE namespace = %s AND key = %s AND NOT is_deleted
ORDER BY version DESC LIMIT 1
"""
_FIRST = """
SELECT id, created_at FROM memory_entries WHERE namespace = %s AND key = %s
ORDER BY version LIMIT 1
"""


async def _snapshot(conn: Conn) -> str:
    row = await (
        await conn.execute("SELECT value FROM meta WHERE key = %s", (SNAPSHOT_KEY,))
    ).fetchone()
    return str(row[0]) if row else REBUILD


async def _set_snapshot(conn: Conn, value: str) -> None:
    await _set_meta(conn, SNAPSHOT_KEY, value)


async def _set_meta(conn: Conn, key: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET"
        f" value = excluded.value, updated_at = {SQL_NOW}",
        (key, value),
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
    return cap if snapshot == REBUILD else await _changes_since(conn, snapshot, cap)


async def vectors_behind(conn: Conn, space: Space | None, cap: int = 10_000) -> int:
    """Indexed memories ``space`` has no vector for (all of them with no space yet)."""
    if space is None:
        sql = "SELECT count(*) FROM (SELECT 1 FROM memory_search_index LIMIT %s) AS n"
        row = await (await conn.execute(sql, (cap,))).fetchone()
        return int(row[0]) if row else 0
    total = 0
    for source in (_missing_sql(space), _stale_contexts_sql(space)):
        query = f"SELECT count(*) FROM ({source}) AS n"
        row = await (await conn.execute(query, (cap,))).fetchone()
        total += int(row[0]) if row else 0
    return total


async def pending(conn: Conn, space: Space | None, *, with_vectors: bool) -> int:
    """Changes not searchable yet (see the SQLite store's ``pending``)."""
    if not with_vectors:
        return await changes_behind(conn)
    marker = await _vectors_marker(conn, space) if space is not None else None
    if marker is not None and await _snapshot(conn) != REBUILD:
        return await _changes_since(conn, marker)
    return await changes_behind(conn) + await vectors_behind(conn, space)


async def _changes_since(conn: Conn, snapshot: str, cap: int = 10_000) -> int:
    row = await (
        await conn.execute(
            f"SELECT count(*) FROM (SELECT 1 {_SINCE} LIMIT %(cap)s) AS behind",
            {"snapshot": snapshot, "cap": cap},
        )
    ).fetchone()
    return int(row[0]) if row else 0


def _vectors_key(space: Space) -> str:
    return f"{VECTORS_KEY_PREFIX}{space.id}"


async def _vectors_marker(conn: Conn, space: Space) -> str | None:
    row = await (
        await conn.execute("SELECT value FROM meta WHERE key = %s", (_vectors_key(space),))
    ).fetchone()
    return str(row[0]) if row else None


async def _forget_vector_markers(conn: Conn) -> None:
    await conn.execute(
        "DELETE FROM meta WHERE substr(key, 1, %s) = %s",
        (len(VECTORS_KEY_PREFIX), VECTORS_KEY_PREFIX),
    )


def _missing_sql(space: Space) -> str:
    return (
        "SELECT k.entry_id, k.key, k.text FROM memory_search_index AS k"
        f" WHERE NOT EXISTS (SELECT 1 FROM {space.memory_vectors} AS v"
        "                   WHERE v.entry_id = k.entry_id AND v.part >= 0)"
        " ORDER BY k.entry_id LIMIT %s"
    )


def _stale_contexts_sql(space: Space) -> str:
    """Memories whose context vector is missing or was pooled from another window."""
    return (
        "SELECT k.entry_id, k.window_ids, k.window_signature FROM memory_search_index AS k"
        f" LEFT JOIN {space.memory_vectors} AS v ON v.entry_id = k.entry_id AND v.part = -1"
        " WHERE k.window_signature IS NOT NULL"
        " AND (v.entry_id IS NULL OR v.text_hash IS DISTINCT FROM k.window_signature)"
        " ORDER BY k.entry_id LIMIT %s"
    )


async def _refresh_key(conn: Conn, namespace: str, key: str) -> tuple[bool, int]:
    """Point the key's index row at its latest live version (or drop it): whether anything
    changed, and the key's position in its namespace."""
    latest = await (await conn.execute(_LATEST_LIVE, (namespace, key))).fetchone()
    live_id = latest[0] if latest is not None else None
    mapped = await (
        await conn.execute(
            "SELECT entry_id, position FROM memory_search_index WHERE namespace = %s AND key = %s",
            (namespace, key),
        )
    ).fetchone()
    if mapped is not None and mapped[0] == live_id:
        return False, 0
    await conn.execute(
        "DELETE FROM memory_search_index WHERE namespace = %s AND key = %s", (namespace, key)
    )
    if live_id is None or latest is None:
        return mapped is not None, int(mapped[1]) if mapped is not None else 0
    position = await _index(conn, live_id, namespace, key, latest[1], latest[2])
    return True, position


async def _index(
    conn: Conn, entry_id: int, namespace: str, key: str, value: Any, memory_type: str
) -> int:
    """Index one live version (its window is set by the caller); returns its position."""
    facts = memory_units.placement(value, memory_type)
    first = await (await conn.execute(_FIRST, (namespace, key))).fetchone()
    assert first is not None
    position = int(first[0])
    moment = facts.moment if facts.moment is not None else as_datetime(first[1])
    await conn.execute(
        "INSERT INTO memory_search_index (entry_id, namespace, key, text, position, moment,"
        " contextual, speaker, thread) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            entry_id,
            namespace,
            key,
            memory_text(key, value),
            position,
            moment,
            facts.contextual,
            facts.speaker,
            facts.thread,
        ),
    )
    return position


def _day(moment: Any) -> str | None:
    """The form the window rule compares (its first 10 characters are the day, in UTC)."""
    aware = as_datetime(moment)
    return None if aware is None else aware.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


_NEIGHBOUR_COLUMNS = "entry_id, moment, contextual, thread, position"


def _neighbour(row: Sequence[Any]) -> Neighbour:
    return Neighbour(row[0], _day(row[1]), bool(row[2]), row[3])


async def _neighbours(
    conn: Conn, namespace: str, position: int, side: str, limit: int
) -> list[Neighbour]:
    """The nearest live memories before (``<``) or after (``>``) a position, nearest first."""
    order = "DESC" if side == "<" else "ASC"
    rows = await (
        await conn.execute(
            f"SELECT {_NEIGHBOUR_COLUMNS} FROM memory_search_index"
            f" WHERE namespace = %s AND position {side} %s ORDER BY position {order} LIMIT %s",
            (namespace, position, limit),
        )
    ).fetchall()
    return [_neighbour(row) for row in rows]


async def _refresh_windows_near(conn: Conn, touched: set[tuple[str, int]]) -> None:
    """Refresh the window of every live memory a change at ``touched`` may have moved: the
    memory there and its neighbours on each side."""
    targets: dict[int, tuple[str, int, Neighbour]] = {}
    for namespace, position in touched:
        rows = await (
            await conn.execute(
                f"(SELECT {_NEIGHBOUR_COLUMNS} FROM memory_search_index"
                " WHERE namespace = %s AND position < %s ORDER BY position DESC LIMIT %s)"
                " UNION ALL"
                f" (SELECT {_NEIGHBOUR_COLUMNS} FROM memory_search_index"
                " WHERE namespace = %s AND position >= %s ORDER BY position LIMIT %s)",
                (namespace, position, CONTEXT_AFTER, namespace, position, CONTEXT_BEFORE + 1),
            )
        ).fetchall()
        for row in rows:
            targets[row[0]] = (namespace, int(row[4]), _neighbour(row))
    for entry_id, (namespace, position, own) in targets.items():
        window: list[int] = []
        if own.contextual:
            window = memory_units.window_of(
                own,
                await _neighbours(conn, namespace, position, "<", CONTEXT_BEFORE),
                await _neighbours(conn, namespace, position, ">", CONTEXT_AFTER),
            )
        await _set_window(conn, entry_id, window)


async def _set_window(conn: Conn, entry_id: int, window: list[int]) -> None:
    """Record a memory's window and the words of its neighbours (only when it moved)."""
    current = await (
        await conn.execute(
            "SELECT window_ids FROM memory_search_index WHERE entry_id = %s", (entry_id,)
        )
    ).fetchone()
    if current is not None and list(current[0]) == window:
        return
    words = ""
    if window:
        rows = await (
            await conn.execute(
                "SELECT entry_id, text FROM memory_search_index WHERE entry_id = ANY(%s)",
                (window,),
            )
        ).fetchall()
        texts = {row[0]: row[1] for row in rows}
        words = " ".join(texts.get(member, "") for member in window)
    signature = (
        hashlib.sha256(memory_units.window_signature(entry_id, window).encode()).hexdigest()
        if window
        else None
    )
    await conn.execute(
        "UPDATE memory_search_index SET context = %s, window_ids = %s, window_signature = %s"
        " WHERE entry_id = %s",
        (words, window, signature, entry_id),
    )


async def _rebuild(conn: Conn) -> int:
    await _forget_vector_markers(conn)  # the vectors are checked against the new index
    await conn.execute("DELETE FROM memory_search_index")
    live = await (
        await conn.execute(
            "SELECT DISTINCT ON (namespace, key) id, namespace, key, value, memory_type,"
            " is_deleted FROM memory_entries ORDER BY namespace, key, version DESC"
        )
    ).fetchall()
    count = 0
    for entry_id, namespace, key, value, memory_type, deleted in live:
        if not deleted:
            await _index(conn, entry_id, namespace, key, value, memory_type)
            count += 1
    await _rebuild_windows(conn)
    return count


async def _rebuild_windows(conn: Conn) -> None:
    rows = await (
        await conn.execute(
            f"SELECT namespace, {_NEIGHBOUR_COLUMNS} FROM memory_search_index"
            " ORDER BY namespace, position"
        )
    ).fetchall()
    by_namespace: dict[str, list[Neighbour]] = {}
    for row in rows:
        by_namespace.setdefault(row[0], []).append(_neighbour(row[1:]))
    for ordered in by_namespace.values():
        for index, own in enumerate(ordered):
            if not own.contextual:
                continue
            before = ordered[max(0, index - CONTEXT_BEFORE) : index][::-1]
            after = ordered[index + 1 : index + 1 + CONTEXT_AFTER]
            await _set_window(conn, own.entry_id, memory_units.window_of(own, before, after))


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
            touched: set[tuple[str, int]] = set()
            for namespace, key in changed:
                moved, position = await _refresh_key(conn, namespace, key)
                if moved:
                    updated += 1
                    touched.add((namespace, position))
            await _refresh_windows_near(conn, touched)
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
        updated = await self.db.run(sync_keywords, what="updating the memory index")
        # (a rebuild writes every row: its term statistics guide the keyword plans)
        self.db.statistics.wrote(updated, "memory_search_index")
        return updated

    async def request_rebuild(self) -> None:
        async def work(conn: Conn) -> None:
            await _set_snapshot(conn, REBUILD)
            await _forget_vector_markers(conn)

        await self.db.transaction(work, what="requesting a memory index rebuild")

    async def keyword_position(self) -> str:
        return await self.db.run(_snapshot, what="reading the memory index")

    async def vectors_current(self, space: Space, position: str) -> bool:
        async def marker(conn: Conn) -> str | None:
            return await _vectors_marker(conn, space)

        recorded = await self.db.run(marker, what="reading the memory index")
        return position != REBUILD and recorded == position

    async def mark_vectors_current(self, space: Space, position: str) -> None:
        if position == REBUILD or await self.vectors_current(space, position):
            return  # an idle round writes nothing

        await self.db.transaction(
            lambda conn: _set_meta(conn, _vectors_key(space), position),
            what="recording the memory vectors' progress",
        )

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
        self.db.statistics.wrote(len(rows), space.memory_vectors)

    async def pool_contexts(self, space: Space, limit: int) -> int:
        async def check(conn: Conn) -> bool:
            return await _contexts_to_pool(conn, space)

        async def pool(conn: Conn) -> int:
            return await _pool_contexts(conn, space, limit)

        if not await self.db.run(check, what="reading the memory index"):
            return 0
        return await self.db.transaction(pool, what="pooling context vectors")


async def _contexts_to_pool(conn: Conn, space: Space) -> bool:
    """Whether any context vector is missing, stale or no longer wanted (a read, so an idle
    server writes nothing)."""
    stale = await (await conn.execute(_stale_contexts_sql(space), (1,))).fetchone()
    if stale is not None:
        return True
    orphan = await (
        await conn.execute(
            f"SELECT 1 FROM {space.memory_vectors} AS v JOIN memory_search_index AS k"
            " ON k.entry_id = v.entry_id WHERE v.part = -1 AND k.window_signature IS NULL"
            " LIMIT 1"
        )
    ).fetchone()
    return orphan is not None


async def _pool_contexts(conn: Conn, space: Space, limit: int) -> int:
    """Pool missing or stale context vectors from the window's own vectors (no model
    call); a window with a member not embedded yet waits. Returns how many."""
    await conn.execute(
        f"DELETE FROM {space.memory_vectors} AS v USING memory_search_index AS k"
        " WHERE v.entry_id = k.entry_id AND v.part = -1 AND k.window_signature IS NULL"
    )
    stale = await (await conn.execute(_stale_contexts_sql(space), (limit,))).fetchall()
    if not stale:
        return 0
    windows = {row[0]: (list(row[1]), row[2]) for row in stale}
    wanted = sorted({*windows, *(m for window, _ in windows.values() for m in window)})
    parts: dict[int, list[np.ndarray]] = {}
    found = await (
        await conn.execute(
            f"SELECT entry_id, embedding FROM {space.memory_vectors}"
            " WHERE part >= 0 AND entry_id = ANY(%s)",
            (wanted,),
        )
    ).fetchall()
    for entry_id, embedding in found:
        if hasattr(embedding, "to_numpy"):  # pgvector's Vector
            embedding = embedding.to_numpy()
        parts.setdefault(entry_id, []).append(np.asarray(embedding, dtype=np.float32))
    rows = []
    for entry_id, (window, signature) in windows.items():
        members = [entry_id, *window]
        if any(member not in parts for member in members):
            continue
        vector = memory_units.pooled([memory_units.pooled(parts[m]) for m in members])
        rows.append((entry_id, CONTEXT_PART, signature, vector))
    if rows:
        await conn.cursor().executemany(
            f"INSERT INTO {space.memory_vectors} (entry_id, part, text_hash, embedding)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (entry_id, part) DO UPDATE SET"
            " text_hash = excluded.text_hash, embedding = excluded.embedding",
            rows,
        )
        await spaces.bump_generation(conn, space)
    return len(rows)
