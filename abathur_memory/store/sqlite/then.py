"""The reads of a memory search at a past time (search/then.py) on SQLite.

The versions live then are not in ``memory_fts`` (it holds the live versions), so their
words are ranked in a scratch FTS5 table made like it (same tokenizer, BM25 with the key
weighing twice the text) in a private in-memory database: the ranking is SQLite's own,
over the corpus the store knew then.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from abathur_memory.core.documents import Vector
from abathur_memory.core.spaces import EmbeddingIdentity, Space
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite.spaces import memory_space
from abathur_memory.store.sqlite.terms import fts_match

_SCRATCH = (
    "CREATE VIRTUAL TABLE then_fts USING fts5("
    "key, text, tokenize = 'porter unicode61 remove_diacritics 2')"
)


def rank_texts(
    terms: tuple[str, ...], docs: Sequence[tuple[str, str]], pool: int
) -> list[tuple[int, float]]:
    """(position in ``docs``, BM25 relevance) of the ``pool`` best, best first."""
    if not terms or not docs:
        return []
    conn = driver.connect_plain(":memory:")
    try:
        conn.execute(_SCRATCH)
        conn.executemany(
            "INSERT INTO then_fts (rowid, key, text) VALUES (?, ?, ?)",
            ((number, key, text) for number, (key, text) in enumerate(docs)),
        )
        # bm25() is lower-is-better (negative); reported as a positive relevance.
        return [
            (int(row[0]), float(row[1]))
            for row in conn.execute(
                "SELECT rowid, -bm25(then_fts, 2.0, 1.0) AS score FROM then_fts"
                " WHERE then_fts MATCH ? ORDER BY score DESC, rowid LIMIT ?",
                (fts_match(terms), pool),
            )
        ]
    finally:
        conn.close()


def memory_parts(
    conn: driver.Connection, identity: str, entry_ids: Sequence[int]
) -> tuple[Space | None, dict[int, list[Vector]]]:
    space = memory_space(conn, EmbeddingIdentity.from_key(identity))
    parts: dict[int, list[Vector]] = {}
    if space is None or not entry_ids:
        return space, parts
    for entry_id, blob in conn.execute(
        f"SELECT entry_id, embedding FROM {space.memory_vectors}"
        " WHERE part >= 0 AND entry_id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(entry_ids)),),
    ):
        parts.setdefault(entry_id, []).append(np.frombuffer(blob, dtype=np.float32))
    return space, parts


def first_stored(
    conn: driver.Connection, addresses: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], datetime]:
    found: dict[tuple[str, str], datetime] = {}
    for namespace, key, stored in conn.execute(
        "SELECT m.namespace, m.key, MIN(m.created_at) FROM json_each(?) AS w"
        " JOIN memory_entries AS m ON m.namespace = w.value ->> 0 AND m.key = w.value ->> 1"
        " GROUP BY m.namespace, m.key",
        (json.dumps([list(address) for address in addresses]),),
    ):
        moment = timestamps.from_db(stored)
        if moment is not None:
            found[(namespace, key)] = moment
    return found
