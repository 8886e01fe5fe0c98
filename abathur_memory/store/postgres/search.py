"""Candidates for the retrieval pipeline on PostgreSQL: a GIN-indexed tsvector for keywords
(scored the BM25 way, keywords.py), pgvector's HNSW (cosine) for vectors.

Each search is one ``REPEATABLE READ READ ONLY`` transaction: the space, both candidate
lists and the rows of the fused hits come from one snapshot. Its first read of
``embedding_spaces`` holds a share lock on that table until it ends, and activating a
rebuilt space locks it exclusively before dropping the old tables, so a search never looks
for a table that went away under it.

Keyword queries are the pipeline's terms, each quoted, through ``websearch_to_tsquery``
(english stemming, as SQLite's porter tokenizer): no operator in a query can reach the
parser. The rows are found by the query's rarest terms and pairs of terms (by every term
when those find fewer rows than the caller wants), and scored by the sum of each term's IDF
times its ``ts_rank`` (keywords.py says why). With filters,
HNSW scans iteratively (pgvector 0.8) until enough rows pass them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np

from abathur_memory.core.documents import Vector
from abathur_memory.core.records import MemoryEntry
from abathur_memory.core.search import (
    CONTEXT_PART,
    SNIPPET_SOURCE_CHARS,
    CandidateFacts,
    CandidateQuery,
    ChunkRow,
    DocumentScope,
    Found,
    Fuse,
    MemoryFuse,
    MemoryRow,
    MemoryScope,
    Ranked,
)
from abathur_memory.core.spaces import EmbeddingIdentity, Space, same_vectors
from abathur_memory.store.postgres import keywords, memory_index, placement, rows, then
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.readable import memory_filter_sql, readable_sql
from abathur_memory.store.postgres.spaces import active_space, memory_space
from abathur_memory.store.postgres.times import as_datetime

# HNSW's search breadth. On clustered vectors (bench/two_backends.py, 100k x 384, m=16,
# ef_construction=64) recall@10 was 0.966 at 100 with 5 of 200 queries finding none of
# their neighbours (the walk stays in another cluster), 0.986 at 200, 0.992 at 400 with no
# query under 0.9; the vector query took 6.5, 8.7 and 13.3 ms.
EF_SEARCH_MIN = 400


async def _snapshot(conn: Conn, pool: int) -> None:
    """One read-only snapshot, HNSW's breadth, and no sequential scans: every read of a
    search goes through an index (GIN, HNSW, primary keys), and the planner, which
    overestimates how many rows an OR of terms and pairs matches, would otherwise read
    every chunk (22 ms at 11,000 chunks where the GIN index takes under 1 ms)."""
    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    ef = max(EF_SEARCH_MIN, pool)
    await conn.execute(
        "SELECT set_config('hnsw.ef_search', %s, true), set_config('enable_seqscan', 'off', true)",
        (str(int(ef)),),
    )


# -- documents ----------------------------------------------------------------------------


async def _document_filter(conn: Conn, scope: DocumentScope) -> tuple[str, list[Any]]:
    """A condition on ``d`` (document_index); ``"true"`` when nothing is excluded."""
    clauses: list[str] = ["true"]
    params: list[Any] = []
    if scope.root_ids is not None:
        clauses.append("d.root_id = ANY(%s)")
        params.append(list(scope.root_ids))
    if scope.path_matches is not None:
        matches = scope.path_matches
        paths = await (await conn.execute("SELECT id, file_path FROM document_index")).fetchall()
        clauses.append("d.id = ANY(%s)")
        params.append([row[0] for row in paths if matches(row[1].partition("/")[2])])
    for tag in scope.tags:
        clauses.append("d.tags @> jsonb_build_array(%s::text)")
        params.append(tag)
    if scope.document_type:
        clauses.append("d.document_type = %s")
        params.append(scope.document_type)
    return " AND ".join(clauses), params


async def _ranked(
    conn: Conn,
    sql: str,
    planned: keywords.KeywordPlan,
    score_params: list[Any],
    params: list[Any],
    query: CandidateQuery,
) -> list[tuple[int, float]]:
    """``sql`` (parameters: the score's, the scan, the filter's, the limit) over the plan's
    scan; again over every term when that found fewer than the caller wants: the rarest
    terms of the whole table need not be in what the caller may see (keywords.py)."""

    async def run(scan: str) -> list[tuple[int, float]]:
        args = [*score_params, scan, *params, query.pool]
        return [(row[0], float(row[1])) for row in await (await conn.execute(sql, args)).fetchall()]

    found = await run(planned.scan)
    if len(found) < query.k and planned.pruned:
        found = await run(planned.every)
    return found


async def _chunk_keywords(
    conn: Conn,
    space: Space,
    query: CandidateQuery,
    where: str,
    params: list[Any],
    stats: keywords.StatsCache,
) -> list[tuple[int, float]]:
    planned = await keywords.plan(conn, space.chunks, query.terms, stats)
    if planned is None:
        return []
    # A chunk's CJK pairs (space_tables.py, core/cjk.py) are matched and scored beside its
    # text, the way BM25F scores fields; chunks without CJK score on ``tsv`` alone.
    score, score_params = planned.score_sql("c.tsv")
    grams, grams_params = planned.score_sql("c.grams_tsv", keywords.GRAMS_RANK_WEIGHTS)
    join = "" if where == "true" else " JOIN document_index AS d ON d.id = c.document_id"
    sql = (
        f"SELECT c.id, {score} + (CASE WHEN c.grams = '' THEN 0 ELSE {grams} END) AS score"
        f" FROM {space.chunks} AS c{join}, websearch_to_tsquery('english', %s) AS r"
        f" WHERE (c.tsv @@ r OR (c.grams <> '' AND c.grams_tsv @@ r)) AND {where}"
        " ORDER BY score DESC, c.id LIMIT %s"
    )
    return await _ranked(conn, sql, planned, [*score_params, *grams_params], params, query)


async def _chunk_vectors(
    conn: Conn, space: Space, vector: Any, where: str, params: list[Any], limit: int, near: str
) -> list[tuple[int, float | None]]:
    """The nearest chunks, best first. ``near``: pgvector's cosine distance operator,
    qualified (placement.py).

    Without a filter the walk returns ids alone, in its order, and no scores: a score
    re-reads the candidate's embedding, which is stored out of line (TOAST). At 1M chunks
    the walk's SQL took 16.4-18.8 ms p50 with the 100 scores and 12.9-14.9 without
    (bench/two_backends.py). The fusion needs ranks only, and _chunk_rows reads the fused
    hits' scores with their rows. A filtered walk scans in relaxed order, so it reads the
    distances to sort by."""
    if where == "true":
        sql = f"SELECT c.id FROM {space.chunks} AS c ORDER BY c.embedding {near} %s LIMIT %s"
        found = await (await conn.execute(sql, (vector, limit))).fetchall()
        return [(row[0], None) for row in found]
    await conn.execute(b"SET LOCAL hnsw.iterative_scan = relaxed_order")
    sql = (
        f"SELECT c.id, 1 - (c.embedding {near} %s) AS score FROM {space.chunks} AS c"
        f" JOIN document_index AS d ON d.id = c.document_id WHERE {where}"
        f" ORDER BY c.embedding {near} %s LIMIT %s"
    )
    found = await (await conn.execute(sql, [vector, *params, vector, limit])).fetchall()
    found.sort(key=lambda row: -row[1])  # relaxed order: nearly sorted
    return [(row[0], float(row[1])) for row in found]


def _unscored(hit: Ranked) -> bool:
    """Found by the vector walk, which left its score to be read with its row."""
    return hit.semantic_rank is not None and hit.semantic_score is None


def _scored(ranked: list[Ranked], scores: dict[int, float]) -> list[Ranked]:
    """``ranked`` with the semantic score of each hit the vector walk found unscored."""
    return [
        replace(r, semantic_score=scores[r.id]) if _unscored(r) and r.id in scores else r
        for r in ranked
    ]


async def _chunk_rows(
    conn: Conn, space: Space, ids: list[int], vector: Any = None, near: str = ""
) -> tuple[dict[int, ChunkRow], dict[int, float]]:
    """The rows of the fused hits, and with ``vector`` each one's similarity to it (read
    here for the hits alone: see _chunk_vectors)."""
    if not ids:
        return {}, {}
    similarity = "NULL" if vector is None else f"1 - (c.embedding {near} %s)"
    found = await (
        await conn.execute(
            "SELECT c.id, d.file_path, r.name, r.path, d.title, c.heading_path, c.start_line,"
            " c.end_line, c.text, d.document_type, d.tags, d.content_hash,"
            f" sd.content_hash, d.size_bytes, d.mtime_ns, {similarity}"
            f" FROM {space.chunks} AS c JOIN document_index AS d ON d.id = c.document_id"
            " JOIN doc_roots AS r ON r.id = d.root_id"
            " LEFT JOIN space_documents AS sd ON sd.document_id = d.id AND sd.space_id = %s"
            " WHERE c.id = ANY(%s)",
            (space.id, ids) if vector is None else (vector, space.id, ids),
        )
    ).fetchall()
    chunk_rows = {
        row[0]: ChunkRow(
            id=row[0],
            file_path=row[1],
            root_name=row[2],
            root_path=row[3],
            title=row[4],
            heading_path=list(row[5]),
            start_line=row[6],
            end_line=row[7],
            text=row[8],
            document_type=row[9],
            tags=list(row[10] or []),
            content_hash=row[11],
            indexed_hash=row[12],
            size_bytes=row[13],
            mtime_ns=row[14],
        )
        for row in found
    }
    return chunk_rows, {row[0]: float(row[15]) for row in found if row[15] is not None}


# -- memories -----------------------------------------------------------------------------


async def _memory_keywords(
    conn: Conn,
    query: CandidateQuery,
    where: str,
    params: list[Any],
    stats: keywords.StatsCache,
) -> list[tuple[int, float]]:
    planned = await keywords.plan(conn, "memory_search_index", query.terms, stats)
    if planned is None:
        return []
    score, score_params = planned.score_sql("k.tsv", keywords.MEMORY_RANK_WEIGHTS)
    sql = (
        f"SELECT k.entry_id, {score} AS score"
        " FROM memory_search_index AS k JOIN memory_entries AS m ON m.id = k.entry_id,"
        " websearch_to_tsquery('english', %s) AS r"
        f" WHERE k.tsv @@ r AND {where} ORDER BY score DESC, k.entry_id LIMIT %s"
    )
    return await _ranked(conn, sql, planned, score_params, params, query)


async def _memory_vectors(
    conn: Conn, space: Space, vector: Any, where: str, params: list[Any], limit: int, near: str
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Nearest rows among readable memories that pass the filters (HNSW's iterative scan
    keeps going until enough pass): each memory's own score (its best part) and its context
    vector's score, each best first."""
    await conn.execute(b"SET LOCAL hnsw.iterative_scan = relaxed_order")
    found = await (
        await conn.execute(
            f"SELECT v.entry_id, v.part, 1 - (v.embedding {near} %s) AS score"
            f" FROM {space.memory_vectors} AS v"
            " JOIN memory_search_index AS k ON k.entry_id = v.entry_id"
            " JOIN memory_entries AS m ON m.id = k.entry_id"
            f" WHERE {where} ORDER BY v.embedding {near} %s LIMIT %s",
            [vector, *params, vector, limit * 4],
        )
    ).fetchall()
    own: dict[int, float] = {}
    around: dict[int, float] = {}
    for entry_id, part, score in found:
        if part == CONTEXT_PART:
            around[entry_id] = float(score)
        elif float(score) > own.get(entry_id, -2.0):
            own[entry_id] = float(score)
    return (
        sorted(own.items(), key=lambda item: -item[1])[:limit],
        sorted(around.items(), key=lambda item: -item[1])[:limit],
    )


async def _candidate_facts(conn: Conn, ids: set[int]) -> dict[int, CandidateFacts]:
    """When each candidate happened and who said it, for the fusion's boosts."""
    if not ids:
        return {}
    found = await (
        await conn.execute(
            "SELECT entry_id, moment, speaker FROM memory_search_index WHERE entry_id = ANY(%s)",
            (sorted(ids),),
        )
    ).fetchall()
    return {row[0]: CandidateFacts(as_datetime(row[1]), row[2]) for row in found}


async def _memory_rows(conn: Conn, ids: list[int], cut: int | None) -> dict[int, MemoryRow]:
    """The hits' rows, their values cut as a listing cuts them (core/replies.py)."""
    if not ids:
        return {}
    found = await (
        await conn.execute(
            f"SELECT {rows.listed(rows.MEMORY, ('value',), cut, 'm')},"
            f" left(k.text, {SNIPPET_SOURCE_CHARS}), k.position FROM memory_entries AS m"
            " JOIN memory_search_index AS k ON k.entry_id = m.id WHERE m.id = ANY(%s)",
            (ids,),
        )
    ).fetchall()
    out: dict[int, MemoryRow] = {}
    for row in found:
        entry: MemoryEntry = rows.memory(row[:-2], rows.NO_CUT if cut is None else cut)
        out[entry.id] = MemoryRow(entry, row[-2], int(row[-1]))
    return out


async def _memory_neighbours(
    conn: Conn, hits: list[tuple[int, str, int]], around: int, cut: int | None
) -> dict[int, list[tuple[int, MemoryEntry]]]:
    columns = rows.listed(rows.MEMORY, ("value",), cut, "m")
    out: dict[int, list[tuple[int, MemoryEntry]]] = {}
    for entry_id, namespace, position in hits:
        near: list[tuple[int, MemoryEntry]] = []
        for side, order, sign in (("<", "DESC", -1), (">", "ASC", 1)):
            found = await (
                await conn.execute(
                    f"SELECT {columns} FROM memory_search_index AS k"
                    " JOIN memory_entries AS m ON m.id = k.entry_id"
                    f" WHERE k.namespace = %s AND k.position {side} %s"
                    f" ORDER BY k.position {order} LIMIT %s",
                    (namespace, position, around),
                )
            ).fetchall()
            near += [
                (sign * (index + 1), rows.memory(row, rows.NO_CUT if cut is None else cut))
                for index, row in enumerate(found)
            ]
        out[entry_id] = sorted(near, key=lambda item: item[0])
    return out


class PostgresSearchStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.term_stats: keywords.StatsCache = {}  # of this database's tables

    def _near(self) -> str:
        return placement.cosine_distance(self.db.vector_schema)

    async def chunks(
        self, query: CandidateQuery, scope: DocumentScope, fuse: Fuse
    ) -> Found[ChunkRow]:
        async def work(conn: Conn) -> Found[ChunkRow]:
            async with conn.transaction():
                await _snapshot(conn, query.pool)
                space = await active_space(conn)
                if space is None:
                    return Found(space=None, vector_used=False)
                vector = query.vector if same_vectors(query.identity, space.identity) else None
                where, params = await _document_filter(conn, scope)
                keyword: list[tuple[int, float]] = []
                if query.terms:
                    keyword = await _chunk_keywords(
                        conn, space, query, where, params, self.term_stats
                    )
                query_vector = None if vector is None else _as_vector(vector)
                semantic: list[tuple[int, float | None]] = []
                if query_vector is not None:
                    semantic = await _chunk_vectors(
                        conn, space, query_vector, where, params, query.pool, self._near()
                    )
                ranked = fuse(keyword, semantic, query.k)
                found_rows, scores = await _chunk_rows(
                    conn,
                    space,
                    [r.id for r in ranked],
                    query_vector if any(_unscored(r) for r in ranked) else None,
                    self._near(),
                )
                return Found(space, vector is not None, _scored(ranked, scores), found_rows)

        return await self.db.run(work, what="searching documents")

    async def memories(
        self, query: CandidateQuery, scope: MemoryScope, fuse: MemoryFuse
    ) -> Found[MemoryRow]:
        async def work(conn: Conn) -> Found[MemoryRow]:
            async with conn.transaction():
                await _snapshot(conn, query.pool)
                space = (
                    await memory_space(conn, EmbeddingIdentity.from_key(query.identity))
                    if query.identity
                    else None
                )
                pending = await memory_index.pending(
                    conn, space, with_vectors=query.identity is not None
                )
                vector = query.vector if space is not None else None
                where, params = readable_sql(scope.principal, scope.prefix)
                narrowed, narrowed_params = memory_filter_sql(scope.filters)
                where, params = where + narrowed, [*params, *narrowed_params]
                keyword: list[tuple[int, float]] = []
                if query.terms:
                    keyword = await _memory_keywords(conn, query, where, params, self.term_stats)
                semantic: list[tuple[int, float]] = []
                context: list[tuple[int, float]] = []
                if vector is not None and space is not None:
                    semantic, context = await _memory_vectors(
                        conn, space, _as_vector(vector), where, params, query.pool, self._near()
                    )
                candidates = {c for c, _ in (*keyword, *semantic, *context)}
                facts = await _candidate_facts(conn, candidates)
                ranked = fuse(keyword, semantic, context, query.k, facts)
                found_rows = await _memory_rows(conn, [r.id for r in ranked], query.cut)
                return Found(space, vector is not None, ranked, found_rows, pending)

        return await self.db.run(work, what="searching memories")

    async def memory_neighbours(
        self, hits: list[tuple[int, str, int]], around: int, cut: int | None
    ) -> dict[int, list[tuple[int, MemoryEntry]]]:
        async def work(conn: Conn) -> dict[int, list[tuple[int, MemoryEntry]]]:
            return await _memory_neighbours(conn, hits, around, cut)

        return await self.db.run(work, what="reading memories")

    async def rank_texts(
        self, terms: tuple[str, ...], docs: Sequence[tuple[str, str]], pool: int
    ) -> list[tuple[int, float]]:
        async def work(conn: Conn) -> list[tuple[int, float]]:
            return await then.rank_texts(conn, terms, docs, pool, self.term_stats)

        return await self.db.run(work, what="ranking memories")

    async def memory_parts(
        self, identity: str, entry_ids: Sequence[int]
    ) -> tuple[Space | None, dict[int, list[Vector]]]:
        async def work(conn: Conn) -> tuple[Space | None, dict[int, list[Vector]]]:
            return await then.memory_parts(conn, identity, entry_ids)

        return await self.db.run(work, what="reading memory vectors")

    async def first_stored(
        self, addresses: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], datetime]:
        async def work(conn: Conn) -> dict[tuple[str, str], datetime]:
            return await then.first_stored(conn, addresses)

        return await self.db.run(work, what="reading memories")


def _as_vector(vector: Any) -> Any:
    """A query vector as pgvector's adapter takes it."""
    return np.asarray(vector, dtype=np.float32)
