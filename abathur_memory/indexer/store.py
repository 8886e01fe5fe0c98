"""Writing one document's chunks, full-text rows and vectors, in the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from abathur_memory.indexer.markdown import Chunk, ParsedDocument
from abathur_memory.indexer.spaces import Space, bump_generation
from abathur_memory.store.sqlite import driver, timestamps, vectors


def binary_code(vector: npt.NDArray[np.float32]) -> bytes:
    """One bit per dimension (sign), padded to whole 64-bit words, for the coarse search."""
    bits = np.packbits(np.asarray(vector) > 0)
    padding = (-len(bits)) % 8
    return bits.tobytes() + b"\x00" * padding


def reusable_vectors(
    conn: driver.Connection, space: Space, text_hashes: Iterable[str]
) -> dict[str, tuple[bytes, bytes]]:
    """Vectors the space already has for these chunk texts: {text_hash: (embedding, code)}."""
    wanted = sorted(set(text_hashes))
    found: dict[str, tuple[bytes, bytes]] = {}
    for start in range(0, len(wanted), 500):
        batch = wanted[start : start + 500]
        marks = ",".join("?" for _ in batch)
        rows = conn.execute(
            f"SELECT c.text_hash, v.embedding, v.code FROM {space.chunks} AS c"
            f" JOIN {space.vectors} AS v ON v.chunk_id = c.id"
            f" WHERE c.text_hash IN ({marks})",
            batch,
        ).fetchall()
        for row in rows:
            found.setdefault(row[0], (row[1], row[2]))
    return found


def write_document(
    conn: driver.Connection,
    space: Space,
    document_id: int,
    content_hash: str,
    parsed: ParsedDocument,
    embedded: dict[str, tuple[bytes, bytes]],
) -> None:
    """Replace the document's chunks in ``space`` with ``parsed`` (vectors by text hash)."""
    conn.execute(f"DELETE FROM {space.chunks} WHERE document_id = ?", (document_id,))
    for chunk in parsed.chunks:
        embedding, code = embedded[chunk.text_hash]
        chunk_id = _insert_chunk(conn, space, document_id, chunk)
        conn.execute(
            f"INSERT INTO {space.vectors} (chunk_id, embedding, code) VALUES (?, ?, ?)",
            (chunk_id, embedding, code),
        )
    conn.execute(
        "INSERT INTO space_documents (space_id, document_id, content_hash, chunk_count)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (space_id, document_id) DO UPDATE SET"
        " content_hash = excluded.content_hash, chunk_count = excluded.chunk_count,"
        f" indexed_at = {timestamps.SQL_NOW}",
        (space.id, document_id, content_hash, len(parsed.chunks)),
    )
    metadata: dict[str, Any] = {"front_matter": parsed.front_matter}
    if parsed.front_matter_error:
        metadata["front_matter_error"] = parsed.front_matter_error
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
            json.dumps(metadata, ensure_ascii=False),
            synced,
            len(parsed.chunks),
            synced,
            space.identity.model_id,
            synced,
            content_hash,
            synced,
            document_id,
        ),
    )
    bump_generation(conn, space)


def _insert_chunk(conn: driver.Connection, space: Space, document_id: int, chunk: Chunk) -> int:
    return conn.execute(
        f"INSERT INTO {space.chunks} (document_id, seq, heading, heading_path, start_line,"
        " end_line, text, text_hash, token_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
        ),
    ).fetchone()[0]


def encode_rows(matrix: npt.NDArray[np.float32]) -> list[tuple[bytes, bytes]]:
    return [(vectors.encode(row), binary_code(row)) for row in matrix]


RETRY_BASE_S = 30
RETRY_MAX_S = 24 * 3600


def mark_failed(conn: driver.Connection, document_id: int, reason: str, *, transient: bool) -> None:
    """Record why a document could not be indexed. A transient failure is retried with
    exponential backoff (30 s, 1 min, 2 min, ... up to a day); a permanent one (the content
    itself is the problem) waits until the file changes."""
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
