"""Keeping the search indexes of memories up to date, in the background.

Every memory change writes an audit row in its own transaction, so the audit table is the
change log: the keyword index (memory_fts) is brought up to date from the audit rows after
the last one applied, and the vectors of the configured model's space follow the keyword
index. Puts stay as cheap as they were and searches only read: catching up is the job of
:class:`MemoryIndexer`, which a server runs from its first put on, whether or not any
document folder is indexed.

The cursor (``meta.memory_index_audit_id``) is the id of the last audit row applied, or
``-1`` when the keyword index must be rebuilt from the live memories (a new or upgraded
database, or a repair).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from abathur_memory.core.values import decode
from abathur_memory.errors import AbathurError
from abathur_memory.indexer import spaces, store
from abathur_memory.indexer.embedders.base import Embedder, EmbeddingIdentity
from abathur_memory.indexer.spaces import Space, bump_generation
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite import queries as hot_queries
from abathur_memory.store.sqlite.database import Database

log = logging.getLogger(__name__)

CURSOR_KEY = "memory_index_audit_id"
REBUILD = -1  # cursor value: rebuild the keyword index from the live memories
AUDIT_BATCH = 5000
EMBED_BATCH = 64
POLL_S = 1.0  # how often another process's memory changes are looked for (one read)
RETRY_MAX_S = 300.0


def memory_text(key: str, value: Any) -> str:
    """The words of a memory: its key and every key and scalar of its JSON value."""
    words: list[str] = [key.replace("_", " ")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, item in node.items():
                words.append(str(name).replace("_", " "))
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif node is not None:
            words.append(str(node))

    walk(value)
    return " ".join(words)


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


async def sync_vectors(
    db: Database, embedder: Embedder, space: Space, *, limit: int | None = None
) -> int:
    """Embed the indexed memories the space has no vectors for; drop vectors of memories
    no longer live. Returns how many memories were embedded (at most ``limit``).

    Writes only when there is something to write: an idle server leaves the file alone.
    """
    if embedder.identity.key() != space.identity.key():
        return 0
    if await db.read(_has_stale_vectors, space):
        await db.write(_drop_stale_vectors, space)
    done = 0
    while limit is None or done < limit:
        batch = EMBED_BATCH if limit is None else min(EMBED_BATCH, limit - done)
        rows = await db.fetchall(_missing_vectors_sql(space), (batch,))
        if not rows:
            break
        parts: list[tuple[int, int, str]] = []
        for entry_id, key, text in rows:
            for number, part in enumerate(_parts(embedder, f"{key}: {text}")):
                parts.append((entry_id, number, part))
        matrix = await embedder.embed_documents([p[2] for p in parts])
        encoded = store.encode_rows(matrix)
        await db.write(_write_vectors, space, parts, encoded)
        done += len(rows)
    return done


def _parts(embedder: Embedder, text: str) -> list[str]:
    """Pieces of a long memory that each fit the model, split between words."""
    limit = embedder.identity.max_tokens
    if embedder.count_tokens(text) <= limit:
        return [text]
    words = text.split()
    pieces, start = [], 0
    size = max(8, limit // 2)
    while start < len(words):
        end = min(len(words), start + size)
        while end - start > 1 and embedder.count_tokens(" ".join(words[start:end])) > limit:
            end = start + max(1, (end - start) * 3 // 4)
        piece = " ".join(words[start:end])
        if embedder.count_tokens(piece) > limit:  # one enormous word: cut its characters
            piece = piece[: limit * 2]
        pieces.append(piece)
        start = end
    return pieces


def _drop_stale_vectors(conn: driver.Connection, space: Space) -> None:
    removed = conn.execute(
        f"DELETE FROM {space.memory_vectors} WHERE entry_id NOT IN"
        " (SELECT entry_id FROM memory_fts_keys)"
    ).rowcount
    if removed:
        bump_generation(conn, space)


def _write_vectors(
    conn: driver.Connection,
    space: Space,
    parts: list[tuple[int, int, str]],
    encoded: list[tuple[bytes, bytes]],
) -> None:
    for (entry_id, number, text), (embedding, code) in zip(parts, encoded, strict=True):
        conn.execute(
            f"INSERT OR REPLACE INTO {space.memory_vectors}"
            " (entry_id, part, text_hash, embedding, code) VALUES (?, ?, ?, ?, ?)",
            (entry_id, number, hashlib.sha256(text.encode()).hexdigest(), embedding, code),
        )
    bump_generation(conn, space)


def memory_space(conn: driver.Connection, identity: EmbeddingIdentity) -> Space | None:
    """The space that holds memory vectors of ``identity`` (active or being built)."""
    row = conn.execute(
        "SELECT * FROM embedding_spaces WHERE identity = ? AND status != 'retired'",
        (identity.key(),),
    ).fetchone()
    return Space.from_row(row) if row is not None else None


def ensure_memory_space(conn: driver.Connection, identity: EmbeddingIdentity) -> Space | None:
    """The space for ``identity``, created (active) when nothing is indexed yet.

    A database whose documents were indexed with another model keeps that index: memories
    are embedded for the configured model once a rebuild for it exists (`index` starts one).
    Runs in a write transaction.
    """
    found = memory_space(conn, identity)
    if found is not None or spaces.active_space(conn) is not None:
        return found
    return spaces.space_for(conn, identity)


@dataclass
class CatchUp:
    keywords: int = 0
    embedded: int = 0


class MemoryIndexer:
    """Keeps memory_fts and the memory vectors current, off the request path.

    ``wake()`` is called after this process changes memories, so its own changes are
    indexed at once; changes by other processes are noticed by polling the audit table
    (a read) every ``poll_s`` seconds. Nothing is written while there is nothing to do.
    """

    def __init__(self, db: Database, embedder: Embedder | None, *, poll_s: float = POLL_S) -> None:
        self.db = db
        self.embedder = embedder
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self.rounds = 0

    def wake(self) -> None:
        self._wake.set()

    async def catch_up(self) -> CatchUp:
        """One round: keywords first, then vectors of everything indexed."""
        done = CatchUp()
        if await self.db.read(keywords_behind):
            done.keywords = await self.db.write(sync_keywords)
        if self.embedder is None:
            return done
        space = await self.db.read(memory_space, self.embedder.identity)
        if space is None:
            space = await self.db.write(ensure_memory_space, self.embedder.identity)
        if space is not None:
            done.embedded = await sync_vectors(self.db, self.embedder, space)
        return done

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Catch up until ``stop`` is set; a failing round (model down, database busy) is
        logged and retried with backoff."""
        failures = 0
        while stop is None or not stop.is_set():
            self._wake.clear()
            try:
                await self.catch_up()
                failures = 0
                delay = self.poll_s
            except (AbathurError, driver.Error) as exc:
                failures += 1
                delay = min(RETRY_MAX_S, self.poll_s * 2**failures)
                log.warning("memory indexing postponed (%s); retrying in %.0fs", exc, delay)
            self.rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
