"""The keyword index and the vectors of live memories, on SQLite.

Every memory change writes an audit row in its own transaction, so the audit table is the
change log: the keyword index (memory_fts) is brought up to date from the audit rows after
the last one applied, and the vectors of a space follow the keyword index. The cursor
(``meta.memory_index_audit_id``) is the id of the last audit row applied, or ``-1`` when
the keyword index must be rebuilt from the live memories (a new or upgraded database, or a
repair).

A memory that is part of a sequence (core/memory_units.py) also carries its *context*: the
words of its neighbours in the ``context`` column, and a context vector (part -1) pooled
from the window's vectors. When a key changes, the windows of its neighbours are refreshed
with it; a context vector whose window changed is pooled again by the vector catch-up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from abathur_memory.core import memory_units
from abathur_memory.core.memory_text import memory_text
from abathur_memory.core.memory_units import CONTEXT_AFTER, CONTEXT_BEFORE, Neighbour
from abathur_memory.core.search import CONTEXT_PART, MemoryVectorPart, UnembeddedMemory
from abathur_memory.core.spaces import Space
from abathur_memory.core.values import decode
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite import queries as hot_queries
from abathur_memory.store.sqlite.chunks import encoded
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.spaces import bump_generation

CURSOR_KEY = "memory_index_audit_id"
# The keyword cursor at which a space's vectors were last complete (every memory indexed
# then had its vectors and current context vector): what makes ``pending`` a range count of
# the audit log instead of an anti-join over every memory on every search.
VECTORS_KEY_PREFIX = "memory_index_vectors_s"
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
    return cap if cursor == REBUILD else _changes_after(conn, cursor, cap)


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
        touched: set[tuple[str, int]] = set()
        for address in dict.fromkeys((c[1], c[2]) for c in changes):
            changed, position = _refresh_key(conn, *address)
            if changed:
                updated += 1
                touched.add((address[0], position))
        _refresh_windows_near(conn, touched)
        cursor = changes[-1][0]
    last = conn.execute("SELECT COALESCE(max(id), 0) FROM audit").fetchone()[0]
    _set_cursor(conn, max(cursor, last))
    return updated


def _rebuild(conn: driver.Connection) -> int:
    _forget_vector_markers(conn)  # the vectors are checked against the new index
    conn.execute("DELETE FROM memory_fts")
    conn.execute("DELETE FROM memory_fts_keys")
    live = conn.execute(
        "SELECT m.id, m.namespace, m.key, m.value, m.memory_type FROM memory_entries AS m"
        " WHERE m.is_deleted = 0 AND m.version = (SELECT MAX(v.version) FROM memory_entries"
        " AS v WHERE v.namespace = m.namespace AND v.key = m.key)"
    ).fetchall()
    for entry_id, namespace, key, value, memory_type in live:
        _index(conn, entry_id, namespace, key, value, memory_type)
    for (namespace,) in conn.execute("SELECT DISTINCT namespace FROM memory_fts_keys").fetchall():
        _rebuild_windows(conn, namespace)
    # Everything up to the newest audit row is now reflected (the transaction holds the write
    # lock, so no change can slip in between the read of the live rows and this one).
    last = conn.execute("SELECT COALESCE(max(id), 0) FROM audit").fetchone()[0]
    _set_cursor(conn, last)
    return len(live)


def _refresh_key(conn: driver.Connection, namespace: str, key: str) -> tuple[bool, int]:
    """Point the key's index row at its latest live version (or drop it): whether anything
    changed, and the key's position in its namespace."""
    mapped = conn.execute(
        "SELECT entry_id, position FROM memory_fts_keys WHERE namespace = ? AND key = ?",
        (namespace, key),
    ).fetchone()
    live = conn.execute(
        hot_queries.MEMORY_GET_LATEST, {"namespace": namespace, "key": key}
    ).fetchone()
    if mapped is not None and (live is None or live["id"] != mapped[0]):
        conn.execute("DELETE FROM memory_fts WHERE rowid = ?", (mapped[0],))
        conn.execute(
            "DELETE FROM memory_fts_keys WHERE namespace = ? AND key = ?", (namespace, key)
        )
        if live is None:
            return True, int(mapped[1])
        mapped = None
    if live is not None and mapped is None:
        position = _index(conn, live["id"], namespace, key, live["value"], live["memory_type"])
        return True, position
    return False, 0


def _index(
    conn: driver.Connection,
    entry_id: int,
    namespace: str,
    key: str,
    value: str,
    memory_type: str,
) -> int:
    """Index one live version (its window is set by the caller); returns its position."""
    decoded = decode(value)
    facts = memory_units.placement(decoded, memory_type)
    first = conn.execute(
        "SELECT id, created_at FROM memory_entries WHERE namespace = ? AND key = ?"
        " ORDER BY version LIMIT 1",
        (namespace, key),
    ).fetchone()
    position, first_stored = int(first[0]), first[1]
    moment = timestamps.to_db(facts.moment) if facts.moment is not None else first_stored
    conn.execute(
        "INSERT INTO memory_fts (rowid, namespace, key, text, context) VALUES (?, ?, ?, ?, '')",
        (entry_id, namespace, key, memory_text(key, decoded)),
    )
    conn.execute(
        "INSERT INTO memory_fts_keys (namespace, key, entry_id, position, moment, contextual,"
        " speaker, thread) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            namespace,
            key,
            entry_id,
            position,
            moment,
            int(facts.contextual),
            facts.speaker,
            facts.thread,
        ),
    )
    return position


_NEIGHBOUR_COLUMNS = "entry_id, moment, contextual, thread, position"


def _neighbour(row: tuple[Any, ...]) -> Neighbour:
    return Neighbour(row[0], row[1], bool(row[2]), row[3])


def _neighbours(
    conn: driver.Connection, namespace: str, position: int, side: str, limit: int
) -> list[Neighbour]:
    """The nearest live memories before (``<``) or after (``>``) a position, nearest first."""
    order = "DESC" if side == "<" else "ASC"
    rows = conn.execute(
        f"SELECT {_NEIGHBOUR_COLUMNS} FROM memory_fts_keys"
        f" WHERE namespace = ? AND position {side} ? ORDER BY position {order} LIMIT ?",
        (namespace, position, limit),
    ).fetchall()
    return [_neighbour(row) for row in rows]


def _refresh_windows_near(conn: driver.Connection, touched: set[tuple[str, int]]) -> None:
    """Refresh the window of every live memory whose window a change at ``touched`` may
    have moved: the memory there and its neighbours on each side."""
    targets: dict[int, tuple[str, int, Neighbour]] = {}
    for namespace, position in touched:
        rows = conn.execute(
            f"SELECT {_NEIGHBOUR_COLUMNS} FROM memory_fts_keys WHERE namespace = ?"
            " AND position IN (SELECT position FROM memory_fts_keys WHERE namespace = ?"
            "   AND position < ? ORDER BY position DESC LIMIT ?)"
            " UNION ALL"
            f" SELECT {_NEIGHBOUR_COLUMNS} FROM memory_fts_keys WHERE namespace = ?"
            " AND position IN (SELECT position FROM memory_fts_keys WHERE namespace = ?"
            "   AND position >= ? ORDER BY position LIMIT ?)",
            (
                namespace,
                namespace,
                position,
                CONTEXT_AFTER,
                namespace,
                namespace,
                position,
                CONTEXT_BEFORE + 1,
            ),
        ).fetchall()
        for row in rows:
            targets[row[0]] = (namespace, row[4], _neighbour(row))
    for entry_id, (namespace, position, own) in targets.items():
        window: list[int] = []
        if own.contextual:
            window = memory_units.window_of(
                own,
                _neighbours(conn, namespace, position, "<", CONTEXT_BEFORE),
                _neighbours(conn, namespace, position, ">", CONTEXT_AFTER),
            )
        _set_window(conn, entry_id, window)


def _rebuild_windows(conn: driver.Connection, namespace: str) -> None:
    rows = conn.execute(
        f"SELECT {_NEIGHBOUR_COLUMNS} FROM memory_fts_keys WHERE namespace = ? ORDER BY position",
        (namespace,),
    ).fetchall()
    ordered = [_neighbour(row) for row in rows]
    for index, own in enumerate(ordered):
        if not own.contextual:
            continue
        before = ordered[max(0, index - CONTEXT_BEFORE) : index][::-1]
        after = ordered[index + 1 : index + 1 + CONTEXT_AFTER]
        _set_window(conn, own.entry_id, memory_units.window_of(own, before, after))


def _set_window(conn: driver.Connection, entry_id: int, window: list[int]) -> None:
    """Record a memory's window and the words of its neighbours (only when it moved)."""
    encoded_window = json.dumps(window)
    current = conn.execute(
        "SELECT window_ids FROM memory_fts_keys WHERE entry_id = ?", (entry_id,)
    ).fetchone()
    if current is not None and current[0] == encoded_window:
        return
    words = ""
    if window:
        marks = ",".join("?" * len(window))
        texts = dict(
            conn.execute(
                f"SELECT rowid, text FROM memory_fts WHERE rowid IN ({marks})", window
            ).fetchall()
        )
        words = " ".join(texts.get(member, "") for member in window)
    conn.execute("UPDATE memory_fts SET context = ? WHERE rowid = ?", (words, entry_id))
    conn.execute(
        "UPDATE memory_fts_keys SET window_ids = ?, window_signature = ? WHERE entry_id = ?",
        (
            encoded_window,
            _signature_hash(entry_id, window) if window else None,
            entry_id,
        ),
    )


def _signature_hash(entry_id: int, window: list[int]) -> str:
    return hashlib.sha256(memory_units.window_signature(entry_id, window).encode()).hexdigest()


def _set_cursor(conn: driver.Connection, value: int) -> None:
    _set_meta(conn, CURSOR_KEY, value)


def _set_meta(conn: driver.Connection, key: str, value: int) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
        f" value = excluded.value, updated_at = {timestamps.SQL_NOW}",
        (key, str(value)),
    )


def rebuild_keywords(conn: driver.Connection) -> int:
    """Start the keyword index over (doctor --repair)."""
    return _rebuild(conn)


def request_rebuild(conn: driver.Connection) -> None:
    """Have the next catch-up rebuild the keyword index (after a salvage, say)."""
    _set_cursor(conn, REBUILD)
    _forget_vector_markers(conn)


def _missing_vectors_sql(space: Space) -> str:
    return (
        f"SELECT k.entry_id, k.key, f.text FROM memory_fts_keys AS k"
        f" JOIN memory_fts AS f ON f.rowid = k.entry_id"
        f" WHERE NOT EXISTS (SELECT 1 FROM {space.memory_vectors} AS v"
        f"                   WHERE v.entry_id = k.entry_id AND v.part >= 0) LIMIT ?"
    )


def _missing_count_sql(space: Space) -> str:
    """How many indexed memories have no vector (up to a cap): _missing_vectors_sql without
    reading each memory's text from memory_fts, which cost 2.5x the count at 100,000."""
    return (
        "SELECT count(*) FROM (SELECT 1 FROM memory_fts_keys AS k"
        f" WHERE NOT EXISTS (SELECT 1 FROM {space.memory_vectors} AS v"
        "                   WHERE v.entry_id = k.entry_id AND v.part >= 0) LIMIT ?)"
    )


def _stale_contexts_sql(space: Space) -> str:
    """Memories whose context vector is missing or was pooled from another window."""
    return (
        f"SELECT k.entry_id, k.window_ids, k.window_signature FROM memory_fts_keys AS k"
        f" LEFT JOIN {space.memory_vectors} AS v ON v.entry_id = k.entry_id AND v.part = ?"
        " WHERE k.window_signature IS NOT NULL"
        " AND (v.id IS NULL OR v.text_hash != k.window_signature) LIMIT ?"
    )


def vectors_behind(conn: driver.Connection, space: Space | None, cap: int = 10_000) -> int:
    """How many indexed memories ``space`` has no vectors (or no current context vector)
    for yet (counted up to ``cap``); with no space yet, every indexed memory."""
    if space is None:
        return int(
            conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM memory_fts_keys LIMIT ?)", (cap,)
            ).fetchone()[0]
        )
    missing = int(conn.execute(_missing_count_sql(space), (cap,)).fetchone()[0])
    stale = int(
        conn.execute(
            f"SELECT count(*) FROM ({_stale_contexts_sql(space)})", (CONTEXT_PART, cap)
        ).fetchone()[0]
    )
    return missing + stale


def _contexts_to_pool(conn: driver.Connection, space: Space) -> bool:
    """Whether any context vector is missing, stale or no longer wanted (a read, so an idle
    server writes nothing)."""
    if conn.execute(_stale_contexts_sql(space), (CONTEXT_PART, 1)).fetchone() is not None:
        return True
    orphan = conn.execute(
        f"SELECT 1 FROM {space.memory_vectors} AS v JOIN memory_fts_keys AS k"
        " ON k.entry_id = v.entry_id WHERE v.part = ? AND k.window_signature IS NULL LIMIT 1",
        (CONTEXT_PART,),
    ).fetchone()
    return orphan is not None


def _pool_contexts(conn: driver.Connection, space: Space, limit: int) -> int:
    """Pool the context vectors that are missing or stale, from the window's own vectors
    (no model call); a window with a member not embedded yet waits. Returns how many."""
    conn.execute(
        f"DELETE FROM {space.memory_vectors} WHERE part = ? AND entry_id IN"
        " (SELECT entry_id FROM memory_fts_keys WHERE window_signature IS NULL)",
        (CONTEXT_PART,),
    )
    stale = conn.execute(_stale_contexts_sql(space), (CONTEXT_PART, limit)).fetchall()
    if not stale:
        return 0
    windows = {row[0]: (json.loads(row[1]), row[2]) for row in stale}
    wanted = sorted({*windows, *(m for window, _ in windows.values() for m in window)})
    parts: dict[int, list[np.ndarray]] = {}
    for start in range(0, len(wanted), 500):
        batch = wanted[start : start + 500]
        for entry_id, blob in conn.execute(
            f"SELECT entry_id, embedding FROM {space.memory_vectors}"
            f" WHERE part >= 0 AND entry_id IN ({','.join('?' * len(batch))})",
            batch,
        ):
            parts.setdefault(entry_id, []).append(np.frombuffer(blob, dtype=np.float32))
    rows = []
    for entry_id, (window, signature) in windows.items():
        members = [entry_id, *window]
        if any(member not in parts for member in members):
            continue
        vector = memory_units.pooled([memory_units.pooled(parts[member]) for member in members])
        embedding, code = encoded(vector)
        rows.append((entry_id, CONTEXT_PART, signature, embedding, code))
    if rows:
        conn.executemany(
            f"INSERT OR REPLACE INTO {space.memory_vectors}"
            " (entry_id, part, text_hash, embedding, code) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        bump_generation(conn, space)
    return len(rows)


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


def pending(conn: driver.Connection, space: Space | None, *, with_vectors: bool) -> int:
    """Changes not searchable yet: those the keyword index has not applied and, with
    ``with_vectors``, those ``space``'s vectors have not caught up with (counted up to a cap).

    Once the indexer has recorded the cursor at which the space's vectors were complete,
    that is the audit rows after it (a range read); before that, the memories without
    vectors are counted (a scan of the index, as a new space's first catch-up needs).
    """
    if not with_vectors:
        return changes_behind(conn)
    marker = _vectors_marker(conn, space) if space is not None else None
    if marker is not None and keyword_cursor(conn) != REBUILD:
        return _changes_after(conn, marker)
    return changes_behind(conn) + vectors_behind(conn, space)


def _changes_after(conn: driver.Connection, audit_id: int, cap: int = 10_000) -> int:
    return int(
        conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM audit WHERE id > ?"
            " AND memory_operation_type IS NOT NULL LIMIT ?)",
            (audit_id, cap),
        ).fetchone()[0]
    )


def _vectors_key(space: Space) -> str:
    return f"{VECTORS_KEY_PREFIX}{space.id}"


def _vectors_marker(conn: driver.Connection, space: Space) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_vectors_key(space),)).fetchone()
    return int(row[0]) if row else None


def _mark_vectors_current(conn: driver.Connection, space: Space, cursor: int) -> None:
    """Record that every memory indexed at keyword ``cursor`` has its vectors (never moving
    the marker back: another indexer may have recorded a later cursor)."""
    marker = _vectors_marker(conn, space)
    if cursor != REBUILD and (marker is None or marker < cursor):
        _set_meta(conn, _vectors_key(space), cursor)


def _forget_vector_markers(conn: driver.Connection) -> None:
    conn.execute(
        "DELETE FROM meta WHERE substr(key, 1, ?) = ?",
        (len(VECTORS_KEY_PREFIX), VECTORS_KEY_PREFIX),
    )


class SqliteMemoryIndexStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def behind(self) -> bool:
        return await self.db.read(keywords_behind)

    async def sync_keywords(self) -> int:
        return await self.db.write(sync_keywords)

    async def request_rebuild(self) -> None:
        await self.db.write(request_rebuild)

    async def keyword_position(self) -> str:
        return str(await self.db.read(keyword_cursor))

    async def vectors_current(self, space: Space, position: str) -> bool:
        cursor = int(position)
        return cursor != REBUILD and await self.db.read(_vectors_marker, space) == cursor

    async def mark_vectors_current(self, space: Space, position: str) -> None:
        if not await self.vectors_current(space, position):  # an idle round writes nothing
            await self.db.write(_mark_vectors_current, space, int(position))

    async def unembedded(self, space: Space, limit: int) -> list[UnembeddedMemory]:
        rows = await self.db.fetchall(_missing_vectors_sql(space), (limit,))
        return [UnembeddedMemory(row[0], row[1], row[2]) for row in rows]

    async def has_stale_vectors(self, space: Space) -> bool:
        return await self.db.read(_has_stale_vectors, space)

    async def drop_stale_vectors(self, space: Space) -> None:
        await self.db.write(_drop_stale_vectors, space)

    async def write_vectors(self, space: Space, parts: Sequence[MemoryVectorPart]) -> None:
        await self.db.write(_write_vectors, space, parts)

    async def pool_contexts(self, space: Space, limit: int) -> int:
        if not await self.db.read(_contexts_to_pool, space):
            return 0
        return await self.db.write(_pool_contexts, space, limit)
