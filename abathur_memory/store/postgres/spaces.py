"""Embedding spaces on PostgreSQL: the same life cycle as on SQLite (store/sqlite/spaces.py).

Changes to the set of spaces (a new one, an activation) run under a transaction-level
advisory lock, so several servers deciding at once make one space. Activation drops the
replaced space's tables after locking ``embedding_spaces`` exclusively: a search holds a
share lock on it from its first read to its end, so it finishes on the old tables before
they go, and the next one sees the new space.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from abathur_memory.core.spaces import EmbeddingIdentity, Space, memory_space_of
from abathur_memory.store.postgres import space_tables
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.times import SQL_NOW

log = logging.getLogger(__name__)

_COLUMNS = "id, identity, status, generation"
_LOCK = (
    "SELECT pg_advisory_xact_lock("
    "hashtextextended('abathur-memory spaces ' || current_schema(), 0))"
)


def space_of(row: Sequence[Any]) -> Space:
    return Space(
        id=int(row[0]),
        identity=EmbeddingIdentity.from_key(str(row[1])),
        status=str(row[2]),
        generation=int(row[3]),
    )


async def _one(conn: Conn, where: str, params: tuple[object, ...] = ()) -> Space | None:
    row = await (
        await conn.execute(f"SELECT {_COLUMNS} FROM embedding_spaces WHERE {where}", params)
    ).fetchone()
    return space_of(row) if row is not None else None


async def active_space(conn: Conn) -> Space | None:
    return await _one(conn, "status = 'active'")


async def building_space(conn: Conn) -> Space | None:
    return await _one(conn, "status = 'building'")


async def live_spaces(conn: Conn) -> list[Space]:
    rows = await (
        await conn.execute(f"SELECT {_COLUMNS} FROM embedding_spaces WHERE status != 'retired'")
    ).fetchall()
    return [space_of(row) for row in rows]


async def space_by_key(conn: Conn, identity: str) -> Space | None:
    """The live space of exactly this identity (compared parsed: a key stored by an older
    release may spell the same identity differently)."""
    key = EmbeddingIdentity.from_key(identity).key()
    return next((s for s in await live_spaces(conn) if s.identity.key() == key), None)


async def memory_space(conn: Conn, identity: EmbeddingIdentity) -> Space | None:
    """The space that holds memory vectors of ``identity`` (core.spaces.memory_space_of)."""
    return memory_space_of(await live_spaces(conn), identity)


async def space_for(conn: Conn, identity: EmbeddingIdentity) -> Space:
    """The space of ``identity``: found, or made (active when nothing else is, else built
    beside the active one, every synced document then marked stale). In a transaction."""
    found = await space_by_key(conn, identity.key())
    if found is not None:
        return found
    await conn.execute(_LOCK)
    found = await space_by_key(conn, identity.key())  # made meanwhile by another server
    if found is not None:
        return found
    current = await active_space(conn)
    stale_build = await building_space(conn)
    if stale_build is not None:  # a build for an identity no longer wanted
        log.warning("abandoning the unfinished index for %s", stale_build.identity.model_id)
        await drop_space(conn, stale_build)
    status = "building" if current is not None else "active"
    row = await (
        await conn.execute(
            "INSERT INTO embedding_spaces (identity, model_id, dim, status, activated_at)"
            f" VALUES (%s, %s, %s, %s, CASE WHEN %s = 'active' THEN {SQL_NOW} END)"
            f" RETURNING {_COLUMNS}",
            (identity.key(), identity.model_id, identity.dim, status, status),
        )
    ).fetchone()
    assert row is not None
    space = space_of(row)
    await space_tables.upgrade(conn, space.id, identity.dim, 0)
    if status == "active":
        await _record_meta(conn, identity)
    if current is not None:
        await conn.execute(
            "UPDATE document_index SET sync_status = 'stale' WHERE sync_status = 'synced'"
        )
        if current.identity.same_vectors(identity):  # the memories' vectors stay right
            await conn.execute(
                f"INSERT INTO {space.memory_vectors} (entry_id, part, text_hash, embedding)"
                f" SELECT entry_id, part, text_hash, embedding FROM {current.memory_vectors}"
            )
        log.warning(
            "the embedding identity changed (%s: %s): rebuilding the index; the old one "
            "answers searches until the new one is complete",
            identity.model_id,
            "; ".join(current.identity.differences(identity)),
        )
    return space


async def activate(conn: Conn, space: Space) -> None:
    """Make a fully built space the active one and drop the one it replaces."""
    await conn.execute("LOCK TABLE embedding_spaces IN ACCESS EXCLUSIVE MODE")
    previous = await active_space(conn)
    if previous is not None and previous.id != space.id:
        await drop_space(conn, previous)
    await conn.execute(
        f"UPDATE embedding_spaces SET status = 'active', activated_at = {SQL_NOW} WHERE id = %s",
        (space.id,),
    )
    await _record_meta(conn, space.identity)


async def drop_space(conn: Conn, space: Space) -> None:
    for table in space_tables.table_names(space.id):
        await conn.execute(f"DROP TABLE IF EXISTS {table}".encode())
    await conn.execute("DELETE FROM embedding_spaces WHERE id = %s", (space.id,))


async def bump_generation(conn: Conn, space: Space) -> None:
    """Readers of this backend keep no vector cache; the counter is kept for parity and for
    the doctor (how often the space changed)."""
    await conn.execute(
        "UPDATE embedding_spaces SET generation = generation + 1 WHERE id = %s", (space.id,)
    )


async def _record_meta(conn: Conn, identity: EmbeddingIdentity) -> None:
    for key, value in (
        ("embedding_model", identity.model_id),
        ("embedding_dim", str(identity.dim)),
        ("embedding_identity", identity.key()),
    ):
        await conn.execute(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET"
            f" value = excluded.value, updated_at = {SQL_NOW}",
            (key, value),
        )


class PostgresSpaceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def active(self) -> Space | None:
        return await self.db.run(active_space, what="reading the embedding spaces")

    async def building(self) -> Space | None:
        return await self.db.run(building_space, what="reading the embedding spaces")

    async def for_identity(self, identity: EmbeddingIdentity) -> Space:
        async def work(conn: Conn) -> Space:
            async with conn.transaction():
                return await space_for(conn, identity)

        return await self.db.run(work, what="choosing the embedding space")

    async def memory_space(self, identity: EmbeddingIdentity) -> Space | None:
        async def work(conn: Conn) -> Space | None:
            return await memory_space(conn, identity)

        return await self.db.run(work, what="reading the embedding spaces")

    async def ensure_memory_space(self, identity: EmbeddingIdentity) -> Space | None:
        async def work(conn: Conn) -> Space | None:
            async with conn.transaction():
                found = await memory_space(conn, identity)
                if found is not None or await active_space(conn) is not None:
                    return found
                return await space_for(conn, identity)

        return await self.db.run(work, what="choosing the embedding space")
