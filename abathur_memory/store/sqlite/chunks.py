"""Writing documents' chunks, full-text rows and vectors on SQLite, in the caller's
transaction; reading back the vectors a space already holds."""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np

from abathur_memory.core.cjk import index_grams
from abathur_memory.core.documents import Chunk, IndexedDocument, Vector
from abathur_memory.core.spaces import Space
from abathur_memory.store.sqlite import driver, timestamps, vectors
from abathur_memory.store.sqlite.spaces import bump_generation

RETRY_BASE_S = 30
RETRY_MAX_S = 24 * 3600


def binary_code(vector: Vector) -> bytes:
    """One bit per dimension (sign), padded to whole 64-bit words, for the coarse search."""
    bits = np.packbits(np.asarray(vector) > 0)
    padding = (-len(bits)) % 8
    return bits.tobytes() + b"\x00" * padding


def encoded(vector: Vector) -> tuple[bytes, bytes]:
    """The stored pair: float32 bytes and the 1-bit code."""
    return vectors.encode(vector), binary_code(vector)


def reusable_vectors(
    conn: driver.Connection, space: Space, text_hashes: Iterable[str]
) -> dict[str, Vector]:
    """Vectors the space already has for these chunk texts: {text_hash: vector}."""
    wanted = sorted(set(text_hashes))
    found: dict[str, Vector] = {}
    for start in range(0, len(wanted), 500):
        batch = wanted[start : start + 500]
        marks = ",".join("?" for _ in batch)
        rows = conn.execute(
            f"SELECT c.text_hash, v.embedding FROM {space.chunks} AS c"
            f" JOIN {space.vectors} AS v ON v.chunk_id = c.id"
            f" WHERE c.text_hash IN ({marks})",
            batch,
        ).fetchall()
        for row in rows:
            if row[0] not in found:
                found[row[0]] = vectors.decode(row[1], space.dim)
    return found


def write_documents(
    conn: driver.Connection,
    space: Space,
    documents: Iterable[IndexedDocument],
    by_hash: dict[str, Vector],
) -> None:
    """Replace each document's chunks in ``space`` (vectors by text hash)."""
    codes: dict[str, tuple[bytes, bytes]] = {}
    for document in documents:
        if document.content_changed:  # changed since the scan: record what was read
            conn.execute(
                "UPDATE document_index SET content_hash = ?, size_bytes = ?, mtime_ns = ?"
                " WHERE id = ?",
                (document.content_hash, document.size_bytes, document.mtime_ns, document.id),
            )
        conn.execute(f"DELETE FROM {space.chunks} WHERE document_id = ?", (document.id,))
        for chunk in document.parsed.chunks:
            if chunk.text_hash not in codes:
                codes[chunk.text_hash] = encoded(by_hash[chunk.text_hash])
            embedding, code = codes[chunk.text_hash]
            chunk_id = _insert_chunk(conn, space, document.id, chunk)
            conn.execute(
                f"INSERT INTO {space.vectors} (chunk_id, embedding, code) VALUES (?, ?, ?)",
                (chunk_id, embedding, code),
            )
        _record_document(conn, space, document)
    bump_generation(conn, space)


def _record_document(conn: driver.Connection, space: Space, document: IndexedDocument) -> None:
    parsed = document.parsed
    conn.execute(
        "INSERT INTO space_documents (space_id, document_id, content_hash, chunk_count)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (space_id, document_id) DO UPDATE SET"
        " content_hash = excluded.content_hash, chunk_count = excluded.chunk_count,"
        f" indexed_at = {timestamps.SQL_NOW}",
        (space.id, document.id, document.content_hash, len(parsed.chunks)),
    )
    synced = space.status == "active"
    conn.execute(
        "UPDATE document_index SET title = ?, document_type = ?, tags = ?, metadata = ?,"
        " attempts = 0, next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL,"
        " chunk_count = CASE WHEN ? THEN ? ELSE chunk_count END,"
        " embedding_model = CASE WHEN ? THEN ? ELSE embedding_model END,"
        " sync_status = CASE WHEN ? AND content_hash = ? THEN 'synced' ELSE sync_status END,"
        f" last_synced_at = CASE WHEN ? THEN {timestamps.SQL_NOW} ELSE last_synced_at END,"
        f" updated_at = {timestamps.SQL_NOW} WHERE id = ?",
        (
            parsed.title,
            parsed.document_type,
            json.dumps(parsed.tags),
            json.dumps(parsed.metadata(), ensure_ascii=False),
            synced,
            len(parsed.chunks),
            synced,
            space.identity.model_id,
            synced,
            document.content_hash,
            synced,
            document.id,
        ),
    )


def _insert_chunk(conn: driver.Connection, space: Space, document_id: int, chunk: Chunk) -> int:
    return conn.execute(
        f"INSERT INTO {space.chunks} (document_id, seq, heading, heading_path, start_line,"
        " end_line, text, text_hash, token_count, grams) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (
            document_id,
            chunk.seq,
            chunk.heading,
            json.dumps(list(chunk.heading_path), ensure_ascii=False),
            chunk.start_line,
            chunk.end_line,
            chunk.text,
            chunk.text_hash,
            chunk.token_count,
            index_grams(chunk.heading, chunk.text),
        ),
    ).fetchone()[0]


def mark_failed(conn: driver.Connection, document_id: int, reason: str, *, transient: bool) -> None:
    """A transient failure is retried with exponential backoff (30 s, 1 min, 2 min, ... up
    to a day); a permanent one (the content itself is the problem) waits until the file
    changes."""
    conn.execute(
        "UPDATE document_index SET sync_status = 'failed', attempts = attempts + 1,"
        " lease_owner = NULL, lease_until = NULL,"
        " metadata = json_set(COALESCE(metadata, '{}'), '$.error', ?),"
        " next_attempt_at = CASE WHEN ? THEN strftime('%Y-%m-%d %H:%M:%f', 'now',"
        f"   '+' || min({RETRY_MAX_S}, {RETRY_BASE_S} * (1 << min(attempts, 20))) || ' seconds')"
        " END,"
        f" updated_at = {timestamps.SQL_NOW} WHERE id = ?",
        (reason, transient, document_id),
    )
