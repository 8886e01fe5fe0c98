"""The reads of a memory search at a past time (search/then.py) on PostgreSQL.

The versions live then are not in ``memory_search_index`` (it holds the live versions), so
their words are ranked here from their text, with the same tsvector (the key weighted A,
the text B) and the same score as a live search (keywords.py: each term's IDF, from the
index's statistics, times its ts_rank), over every query term.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from abathur_memory.core.documents import Vector
from abathur_memory.core.spaces import EmbeddingIdentity, Space
from abathur_memory.store.postgres import keywords
from abathur_memory.store.postgres.connection import Conn
from abathur_memory.store.postgres.spaces import memory_space
from abathur_memory.store.postgres.times import as_datetime


async def rank_texts(
    conn: Conn,
    terms: tuple[str, ...],
    docs: Sequence[tuple[str, str]],
    pool: int,
    stats: keywords.StatsCache,
) -> list[tuple[int, float]]:
    """(position in ``docs``, relevance) of the ``pool`` best, best first."""
    if not terms or not docs:
        return []
    planned = await keywords.plan(conn, "memory_search_index", terms, stats)
    if planned is None:
        return []
    score, score_params = planned.score_sql("d.tsv", keywords.MEMORY_RANK_WEIGHTS)
    found = await (
        await conn.execute(
            f"SELECT d.i - 1, {score} AS score FROM ("
            " SELECT w.i, setweight(to_tsvector('english', w.key), 'A')"
            "  || setweight(to_tsvector('english', w.text), 'B') AS tsv"
            " FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS w(key, text, i)) AS d,"
            " websearch_to_tsquery('english', %s) AS r"
            " WHERE d.tsv @@ r ORDER BY score DESC, d.i LIMIT %s",
            [
                *score_params,
                [key for key, _ in docs],
                [text for _, text in docs],
                planned.every or planned.scan,
                pool,
            ],
        )
    ).fetchall()
    return [(int(row[0]), float(row[1])) for row in found]


async def memory_parts(
    conn: Conn, identity: str, entry_ids: Sequence[int]
) -> tuple[Space | None, dict[int, list[Vector]]]:
    space = await memory_space(conn, EmbeddingIdentity.from_key(identity))
    parts: dict[int, list[Vector]] = {}
    if space is None or not entry_ids:
        return space, parts
    found = await (
        await conn.execute(
            f"SELECT entry_id, embedding FROM {space.memory_vectors}"
            " WHERE part >= 0 AND entry_id = ANY(%s)",
            (list(entry_ids),),
        )
    ).fetchall()
    for entry_id, embedding in found:
        if hasattr(embedding, "to_numpy"):  # pgvector's Vector
            embedding = embedding.to_numpy()
        parts.setdefault(entry_id, []).append(np.asarray(embedding, dtype=np.float32))
    return space, parts


async def first_stored(
    conn: Conn, addresses: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], datetime]:
    found = await (
        await conn.execute(
            "SELECT m.namespace, m.key, MIN(m.created_at)"
            " FROM unnest(%s::text[], %s::text[]) AS w(namespace, key)"
            " JOIN memory_entries AS m ON m.namespace = w.namespace AND m.key = w.key"
            " GROUP BY m.namespace, m.key",
            ([a[0] for a in addresses], [a[1] for a in addresses]),
        )
    ).fetchall()
    out: dict[tuple[str, str], datetime] = {}
    for namespace, key, stored in found:
        moment = as_datetime(stored)
        if moment is not None:
            out[(namespace, key)] = moment
    return out
