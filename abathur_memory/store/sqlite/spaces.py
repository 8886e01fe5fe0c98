"""Embedding spaces on SQLite: where the chunks and vectors of one embedding identity live.

Each space has its own tables (space_tables.py, versioned), because chunking depends
on the model's token limit and the vectors on its dimension:

- ``chunks_s<N>``: one row per chunk (document, heading path, line range, text, hash, and
  the CJK pairs of core/cjk.py);
- ``chunks_fts_s<N>``: FTS5 (BM25) over heading, text and CJK pairs, kept in step by
  triggers;
- ``chunk_vectors_s<N>``: the float32 vector and its 1-bit-per-dimension code;
- ``memory_vectors_s<N>``: vectors of live memories, for memory_search.

The active space answers searches. When the identity changes (another model, dimension,
prefix scheme or chunker version), a *building* space is filled beside it and replaces it
only once complete, so search never sees an empty or mixed index.
"""

from __future__ import annotations

import logging

from abathur_memory.core.spaces import EmbeddingIdentity, Space, memory_space_of
from abathur_memory.store.sqlite import driver, space_tables, timestamps
from abathur_memory.store.sqlite.database import Database

log = logging.getLogger(__name__)


def space_from_row(row: driver.Row) -> Space:
    return Space(
        id=row["id"],
        identity=EmbeddingIdentity.from_key(row["identity"]),
        status=row["status"],
        generation=row["generation"],
    )


def active_space(conn: driver.Connection) -> Space | None:
    row = conn.execute("SELECT * FROM embedding_spaces WHERE status = 'active'").fetchone()
    return space_from_row(row) if row else None


def building_space(conn: driver.Connection) -> Space | None:
    row = conn.execute("SELECT * FROM embedding_spaces WHERE status = 'building'").fetchone()
    return space_from_row(row) if row else None


def space_for(conn: driver.Connection, identity: EmbeddingIdentity) -> Space:
    """The space of ``identity``: the active one, the one being built, or a new one.

    Called inside a write transaction. With no active space the new space is active at
    once (nothing to keep answering); otherwise it is built beside the active one.
    """
    found = _live_space(conn, identity)
    if found is not None:
        return found
    current = active_space(conn)
    stale_build = building_space(conn)
    if stale_build is not None:  # a build for an identity no longer wanted
        log.warning("abandoning the unfinished index for %s", stale_build.identity.model_id)
        drop_space(conn, stale_build)
    status = "building" if current is not None else "active"
    space_id = conn.execute(
        "INSERT INTO embedding_spaces (identity, model_id, dim, status, activated_at)"
        " VALUES (?, ?, ?, ?, CASE WHEN ? = 'active' THEN strftime('%Y-%m-%d %H:%M:%f', 'now')"
        " END) RETURNING id",
        (identity.key(), identity.model_id, identity.dim, status, status),
    ).fetchone()[0]
    space_tables.create(conn, space_id)
    if status == "active":
        _record_meta(conn, identity)
    if current is not None:
        # Every document must be rebuilt for the new identity.
        conn.execute("UPDATE document_index SET sync_status = 'stale' WHERE sync_status = 'synced'")
        if current.identity.same_vectors(identity):  # the memories' vectors stay right
            conn.execute(
                f"INSERT INTO memory_vectors_s{space_id} (entry_id, part, text_hash, embedding,"
                f" code) SELECT entry_id, part, text_hash, embedding, code FROM"
                f" {current.memory_vectors}"
            )
        log.warning(
            "the embedding identity changed (%s: %s): rebuilding the index; the old one "
            "answers searches until the new one is complete",
            identity.model_id,
            "; ".join(current.identity.differences(identity)),
        )
    row = conn.execute("SELECT * FROM embedding_spaces WHERE id = ?", (space_id,)).fetchone()
    return space_from_row(row)


def activate(conn: driver.Connection, space: Space) -> None:
    """Make a fully built space the active one and drop the one it replaces."""
    previous = active_space(conn)
    if previous is not None and previous.id != space.id:
        drop_space(conn, previous)
    conn.execute(
        f"UPDATE embedding_spaces SET status = 'active', activated_at = {timestamps.SQL_NOW}"
        " WHERE id = ?",
        (space.id,),
    )
    _record_meta(conn, space.identity)


def drop_space(conn: driver.Connection, space: Space) -> None:
    for table in space_tables.table_names(space.id):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute("DELETE FROM embedding_spaces WHERE id = ?", (space.id,))


def bump_generation(conn: driver.Connection, space: Space) -> None:
    """Tell readers (in any process) that the space's vectors changed."""
    conn.execute(
        "UPDATE embedding_spaces SET generation = generation + 1 WHERE id = ?", (space.id,)
    )


def _record_meta(conn: driver.Connection, identity: EmbeddingIdentity) -> None:
    for key, value in (
        ("embedding_model", identity.model_id),
        ("embedding_dim", str(identity.dim)),
        ("embedding_identity", identity.key()),
    ):
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
            f" value = excluded.value, updated_at = {timestamps.SQL_NOW}",
            (key, value),
        )


def live_spaces(conn: driver.Connection) -> list[Space]:
    rows = conn.execute("SELECT * FROM embedding_spaces WHERE status != 'retired'").fetchall()
    return [space_from_row(row) for row in rows]


def _live_space(conn: driver.Connection, identity: EmbeddingIdentity) -> Space | None:
    """The live space of exactly ``identity`` (compared parsed: a key stored by an older
    release may spell the same identity differently)."""
    key = identity.key()
    return next((space for space in live_spaces(conn) if space.identity.key() == key), None)


def memory_space(conn: driver.Connection, identity: EmbeddingIdentity) -> Space | None:
    """The space that holds memory vectors of ``identity`` (core.spaces.memory_space_of)."""
    return memory_space_of(live_spaces(conn), identity)


def ensure_memory_space(conn: driver.Connection, identity: EmbeddingIdentity) -> Space | None:
    """The space for ``identity``, created (active) when nothing is indexed yet.

    A database whose documents were indexed with another model keeps that index: memories
    are embedded for the configured model once a rebuild for it exists (`index` starts one).
    Runs in a write transaction.
    """
    found = memory_space(conn, identity)
    if found is not None or active_space(conn) is not None:
        return found
    return space_for(conn, identity)


class SqliteSpaceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def active(self) -> Space | None:
        return await self.db.read(active_space)

    async def building(self) -> Space | None:
        return await self.db.read(building_space)

    async def for_identity(self, identity: EmbeddingIdentity) -> Space:
        """Found on a reader (every indexing run asks; the space nearly always exists), or
        made in a write transaction, which looks again first (PostgreSQL's does the same)."""
        found = await self.db.read(_live_space, identity)
        if found is not None:
            return found
        return await self.db.write(space_for, identity)

    async def memory_space(self, identity: EmbeddingIdentity) -> Space | None:
        return await self.db.read(memory_space, identity)

    async def ensure_memory_space(self, identity: EmbeddingIdentity) -> Space | None:
        return await self.db.write(ensure_memory_space, identity)
