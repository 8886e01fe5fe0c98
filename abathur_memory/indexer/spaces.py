"""Embedding spaces: where the chunks and vectors of one embedding identity live.

Each space has its own tables, because chunking depends on the model's token limit and the
vectors on its dimension:

- ``chunks_s<N>``: one row per chunk (document, heading path, line range, text, hash);
- ``chunks_fts_s<N>``: FTS5 (BM25) over heading and text, kept in step by triggers;
- ``chunk_vectors_s<N>``: the float32 vector and its 1-bit-per-dimension code.

The active space answers searches. When the identity changes (another model, dimension,
prefix scheme or chunker version), a *building* space is filled beside it and replaces it
only once complete, so search never sees an empty or mixed index.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from abathur_memory.indexer.embedders.base import EmbeddingIdentity
from abathur_memory.storage import driver, timestamps

log = logging.getLogger(__name__)

FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"


@dataclass(frozen=True)
class Space:
    id: int
    identity: EmbeddingIdentity
    status: str
    generation: int

    @property
    def chunks(self) -> str:
        return f"chunks_s{self.id}"

    @property
    def fts(self) -> str:
        return f"chunks_fts_s{self.id}"

    @property
    def vectors(self) -> str:
        return f"chunk_vectors_s{self.id}"

    @property
    def memory_vectors(self) -> str:
        return f"memory_vectors_s{self.id}"

    @property
    def dim(self) -> int:
        return self.identity.dim

    @classmethod
    def from_row(cls, row: driver.Row) -> Space:
        return cls(
            id=row["id"],
            identity=EmbeddingIdentity(**json.loads(row["identity"])),
            status=row["status"],
            generation=row["generation"],
        )


def space_ddl(space_id: int) -> list[str]:
    chunks, fts = f"chunks_s{space_id}", f"chunks_fts_s{space_id}"
    vectors = f"chunk_vectors_s{space_id}"
    return [
        f"""CREATE TABLE {chunks} (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES document_index(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            heading TEXT NOT NULL,
            heading_path TEXT NOT NULL CHECK(json_valid(heading_path)),
            start_line INTEGER NOT NULL CHECK(start_line >= 1),
            end_line INTEGER NOT NULL CHECK(end_line >= start_line),
            text TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            token_count INTEGER NOT NULL,
            UNIQUE (document_id, seq)
        )""",
        f"CREATE INDEX {chunks}_text_hash ON {chunks}(text_hash)",
        f"""CREATE VIRTUAL TABLE {fts} USING fts5(
            heading, text, content='{chunks}', content_rowid='id', tokenize='{FTS_TOKENIZER}'
        )""",
        f"""CREATE TABLE {vectors} (
            chunk_id INTEGER PRIMARY KEY REFERENCES {chunks}(id) ON DELETE CASCADE,
            embedding BLOB NOT NULL,
            code BLOB NOT NULL
        )""",
        *memory_vectors_ddl(space_id),
        f"""CREATE TRIGGER {chunks}_ai AFTER INSERT ON {chunks} BEGIN
            INSERT INTO {fts}(rowid, heading, text) VALUES (new.id, new.heading, new.text);
        END""",
        f"""CREATE TRIGGER {chunks}_ad AFTER DELETE ON {chunks} BEGIN
            INSERT INTO {fts}({fts}, rowid, heading, text)
                VALUES ('delete', old.id, old.heading, old.text);
        END""",
    ]


def memory_vectors_ddl(space_id: int) -> list[str]:
    """Vectors of live memories (one row per part of a long value), for memory_search."""
    table = f"memory_vectors_s{space_id}"
    return [
        f"""CREATE TABLE IF NOT EXISTS {table} (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            entry_id INTEGER NOT NULL,
            part INTEGER NOT NULL,
            text_hash TEXT NOT NULL,
            embedding BLOB NOT NULL,
            code BLOB NOT NULL,
            UNIQUE (entry_id, part)
        )""",
    ]


def active_space(conn: driver.Connection) -> Space | None:
    row = conn.execute("SELECT * FROM embedding_spaces WHERE status = 'active'").fetchone()
    return Space.from_row(row) if row else None


def building_space(conn: driver.Connection) -> Space | None:
    row = conn.execute("SELECT * FROM embedding_spaces WHERE status = 'building'").fetchone()
    return Space.from_row(row) if row else None


def space_for(conn: driver.Connection, identity: EmbeddingIdentity) -> Space:
    """The space of ``identity``: the active one, the one being built, or a new one.

    Called inside a write transaction. With no active space the new space is active at
    once (nothing to keep answering); otherwise it is built beside the active one.
    """
    row = conn.execute(
        "SELECT * FROM embedding_spaces WHERE identity = ? AND status != 'retired'",
        (identity.key(),),
    ).fetchone()
    if row is not None:
        return Space.from_row(row)
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
    for statement in space_ddl(space_id):
        conn.execute(statement)
    if status == "active":
        _record_meta(conn, identity)
    if current is not None:
        # Every document must be rebuilt for the new identity.
        conn.execute("UPDATE document_index SET sync_status = 'stale' WHERE sync_status = 'synced'")
        log.warning(
            "the embedding identity changed (%s -> %s): rebuilding the index; the old one "
            "answers searches until the new one is complete",
            current.identity.model_id,
            identity.model_id,
        )
    row = conn.execute("SELECT * FROM embedding_spaces WHERE id = ?", (space_id,)).fetchone()
    return Space.from_row(row)


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
    for table in (space.memory_vectors, space.vectors, space.fts, space.chunks):
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
