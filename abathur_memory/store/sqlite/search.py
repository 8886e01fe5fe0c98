"""Candidates for the retrieval pipeline on SQLite: BM25 over FTS5, and vectors by a coarse
pass on 1-bit codes held in memory followed by exact cosine (vector_index.py), or an
approximate index (ann.py); the memory side of it is memory_candidates.py.

Each search runs in one read transaction: the space, both candidate lists and the rows of
the fused hits come from one snapshot, so a rebuild that activates a new space (and drops
the old one's tables) between two reads cannot break a search.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from abathur_memory.core.documents import Vector
from abathur_memory.core.records import MemoryEntry
from abathur_memory.core.search import (
    SNIPPET_SOURCE_CHARS,
    CandidateQuery,
    ChunkRow,
    DocumentScope,
    Found,
    Fuse,
    MemoryFuse,
    MemoryRow,
    MemoryScope,
)
from abathur_memory.core.spaces import EmbeddingIdentity, Space, same_vectors
from abathur_memory.store.sqlite import ann, driver, then, vector_index
from abathur_memory.store.sqlite import memory_candidates as candidates
from abathur_memory.store.sqlite import memory_index as sqlite_memory_index
from abathur_memory.store.sqlite import rows as sqlite_rows
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.spaces import active_space, memory_space
from abathur_memory.store.sqlite.terms import TermCounts, keyword_plan


def _memory_space(conn: driver.Connection, identity: str) -> Space | None:
    return memory_space(conn, EmbeddingIdentity.from_key(identity))


# -- documents ----------------------------------------------------------------------------


def _document_filter(conn: driver.Connection, scope: DocumentScope) -> tuple[str, list[Any]]:
    """A condition on ``d`` (document_index); ``"1"`` when nothing is excluded (so the fast
    unfiltered paths apply)."""
    clauses: list[str] = ["1"]
    params: list[Any] = []
    if scope.root_ids is not None:
        clauses.append(f"d.root_id IN ({','.join('?' for _ in scope.root_ids) or 'NULL'})")
        params.extend(scope.root_ids)
    if scope.path_matches is not None:
        matches = scope.path_matches
        ids = [
            row[0]
            for row in conn.execute("SELECT id, file_path FROM document_index")
            if matches(row[1].partition("/")[2])
        ]
        clauses.append(f"d.id IN ({','.join('?' for _ in ids) or 'NULL'})")
        params.extend(ids)
    for tag in scope.tags:
        clauses.append("EXISTS (SELECT 1 FROM json_each(d.tags) WHERE value = ?)")
        params.append(tag)
    if scope.document_type:
        clauses.append("d.document_type = ?")
        params.append(scope.document_type)
    return " AND ".join(clauses), params


def _bm25(
    conn: driver.Connection,
    space: Space,
    terms: tuple[str, ...],
    where: str,
    params: list[Any],
    limit: int,
    counts: TermCounts,
) -> list[tuple[int, float]]:
    plan = keyword_plan(conn, space.fts, terms, counts=counts)
    best = _ranked(conn, space, plan.match, where, params, limit)
    if len(best) < limit and plan.every is not None:  # the rarest terms' rows were too few
        best = _ranked(conn, space, plan.every, where, params, limit)
    return best


def _ranked(
    conn: driver.Connection, space: Space, match: str, where: str, params: list[Any], limit: int
) -> list[tuple[int, float]]:
    if where == "1":  # no filter: rank in FTS5 alone, join nothing before the LIMIT
        rows = conn.execute(
            f"SELECT rowid, bm25({space.fts}, 2.0, 1.0, 1.0) AS score FROM {space.fts}"
            f" WHERE {space.fts} MATCH ? ORDER BY score LIMIT ?",
            [match, limit],
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT f.rowid, bm25({space.fts}, 2.0, 1.0, 1.0) AS score FROM {space.fts} AS f"
            f" JOIN {space.chunks} AS c ON c.id = f.rowid"
            f" JOIN document_index AS d ON d.id = c.document_id"
            f" WHERE {space.fts} MATCH ? AND {where} ORDER BY score LIMIT ?",
            [match, *params, limit],
        ).fetchall()
    # bm25() is lower-is-better (negative); report it as a positive relevance.
    return [(row[0], -row[1]) for row in rows]


def _chunk_rows(conn: driver.Connection, space: Space, ids: list[int]) -> dict[int, ChunkRow]:
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT c.id, c.heading_path, c.start_line, c.end_line, c.text, d.file_path,"
        " d.title, d.document_type, d.tags, d.content_hash, d.size_bytes, d.mtime_ns,"
        " r.name AS root_name, r.path AS root_path, sd.content_hash AS indexed_hash"
        f" FROM {space.chunks} AS c JOIN document_index AS d ON d.id = c.document_id"
        " JOIN doc_roots AS r ON r.id = d.root_id"
        " LEFT JOIN space_documents AS sd ON sd.document_id = d.id AND sd.space_id = ?"
        f" WHERE c.id IN ({','.join('?' for _ in ids)})",
        [space.id, *ids],
    )
    return {
        row["id"]: ChunkRow(
            id=row["id"],
            file_path=row["file_path"],
            root_name=row["root_name"],
            root_path=row["root_path"],
            title=row["title"],
            heading_path=json.loads(row["heading_path"]),
            start_line=row["start_line"],
            end_line=row["end_line"],
            text=row["text"],
            document_type=row["document_type"],
            tags=json.loads(row["tags"] or "[]"),
            content_hash=row["content_hash"],
            indexed_hash=row["indexed_hash"],
            size_bytes=row["size_bytes"],
            mtime_ns=row["mtime_ns"],
        )
        for row in rows
    }


# -- memories -----------------------------------------------------------------------------


class SqliteSearchStore:
    def __init__(
        self, db: Database, cache: vector_index.VectorIndex, graphs: ann.AnnIndexes | None = None
    ) -> None:
        self.db = db
        self.cache = cache
        self.graphs = graphs or ann.AnnIndexes(None)
        self.term_counts = TermCounts()  # (keyword plans: rows per term, remembered a while)

    async def chunks(
        self, query: CandidateQuery, scope: DocumentScope, fuse: Fuse
    ) -> Found[ChunkRow]:
        return await self.db.read(self._chunks, query, scope, fuse)

    def _chunks(
        self, conn: driver.Connection, query: CandidateQuery, scope: DocumentScope, fuse: Fuse
    ) -> Found[ChunkRow]:
        space = active_space(conn)
        if space is None:
            return Found(space=None, vector_used=False)
        vector = query.vector if same_vectors(query.identity, space.identity) else None
        where, params = _document_filter(conn, scope)
        keyword: list[tuple[int, float]] = []
        if query.terms:
            keyword = _bm25(conn, space, query.terms, where, params, query.pool, self.term_counts)
        semantic: list[tuple[int, float]] = []
        vector_path: str | None = None
        if vector is not None:
            allowed = None
            if where != "1":
                allowed = np.array(
                    [
                        r[0]
                        for r in conn.execute(
                            f"SELECT c.id FROM {space.chunks} AS c"
                            f" JOIN document_index AS d ON d.id = c.document_id WHERE {where}",
                            params,
                        )
                    ],
                    dtype=np.int64,
                )
            candidates, vector_path = self.graphs.candidates(
                conn,
                lambda: self.cache.codes(conn, space),
                space,
                space.vectors,
                vector,
                query.pool,
                allowed,
                needed=query.k,
            )
            semantic = vector_index.rerank(conn, space, vector, candidates, query.pool)
        ranked = fuse(keyword, semantic, query.k)
        rows = _chunk_rows(conn, space, [r.id for r in ranked])
        return Found(space, vector is not None, ranked, rows, vector_path=vector_path)

    async def memories(
        self, query: CandidateQuery, scope: MemoryScope, fuse: MemoryFuse
    ) -> Found[MemoryRow]:
        return await self.db.read(self._memories, query, scope, fuse)

    def _memories(
        self,
        conn: driver.Connection,
        query: CandidateQuery,
        scope: MemoryScope,
        fuse: MemoryFuse,
    ) -> Found[MemoryRow]:
        space = _memory_space(conn, query.identity) if query.identity else None
        pending = sqlite_memory_index.pending(conn, space, with_vectors=query.identity is not None)
        vector = query.vector if space is not None else None
        memories = candidates.memory_count(conn)
        scoped = candidates.ScopeSql.of(conn, scope, memories)
        keyword: list[tuple[int, float]] = []
        if query.terms:
            keyword = candidates.keywords(
                conn, query.terms, scoped, query.pool, memories, self.term_counts
            )
        semantic: list[tuple[int, float]] = []
        context: list[tuple[int, float]] = []
        vector_path: str | None = None
        if vector is not None and space is not None:
            found, vector_path = candidates.vector_rows(
                conn,
                self.graphs,
                lambda: self.cache.codes(conn, space, space.memory_vectors),
                space,
                vector,
                scoped,
                2 * query.pool,
                2 * query.k,  # a memory may have several vectors (parts, context)
            )
            semantic, context = candidates.rerank_entries(space, vector, found, query.pool)
        facts = candidates.candidate_facts(conn, {c for c, _ in (*keyword, *semantic, *context)})
        ranked = fuse(keyword, semantic, context, query.k, facts)
        ids = [r.id for r in ranked]
        rows: dict[int, MemoryRow] = {}
        if ids:
            cut = sqlite_rows.NO_CUT if query.cut is None else query.cut
            for row in conn.execute(
                f"SELECT {sqlite_rows.listed_memory_columns(cut)},"
                f" substr(f.text, 1, {SNIPPET_SOURCE_CHARS}) AS search_text,"
                " k.position AS position"
                " FROM memory_entries AS m JOIN memory_fts AS f ON f.rowid = m.id"
                " JOIN memory_fts_keys AS k ON k.entry_id = m.id"
                f" WHERE m.id IN ({','.join('?' for _ in ids)})",
                ids,
            ):
                rows[row["id"]] = MemoryRow(
                    sqlite_rows.memory(row, cut), row["search_text"], row["position"]
                )
        return Found(space, vector is not None, ranked, rows, pending, vector_path)

    async def memory_neighbours(
        self, hits: list[tuple[int, str, int]], around: int, cut: int | None
    ) -> dict[int, list[tuple[int, MemoryEntry]]]:
        return await self.db.read(_memory_neighbours, hits, around, cut)

    async def rank_texts(
        self, terms: tuple[str, ...], docs: Sequence[tuple[str, str]], pool: int
    ) -> list[tuple[int, float]]:
        return await asyncio.to_thread(then.rank_texts, terms, docs, pool)

    async def memory_parts(
        self, identity: str, entry_ids: Sequence[int]
    ) -> tuple[Space | None, dict[int, list[Vector]]]:
        return await self.db.read(then.memory_parts, identity, entry_ids)

    async def first_stored(
        self, addresses: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], datetime]:
        return await self.db.read(then.first_stored, addresses)


def _memory_neighbours(
    conn: driver.Connection, hits: list[tuple[int, str, int]], around: int, cut: int | None
) -> dict[int, list[tuple[int, MemoryEntry]]]:
    columns = sqlite_rows.listed_memory_columns(sqlite_rows.NO_CUT if cut is None else cut)
    out: dict[int, list[tuple[int, MemoryEntry]]] = {}
    for entry_id, namespace, position in hits:
        found: list[tuple[int, MemoryEntry]] = []
        for side, order, sign in (("<", "DESC", -1), (">", "ASC", 1)):
            rows = conn.execute(
                f"SELECT {columns} FROM memory_fts_keys AS k"
                " JOIN memory_entries AS m ON m.id = k.entry_id"
                f" WHERE k.namespace = ? AND k.position {side} ? ORDER BY k.position {order}"
                " LIMIT ?",
                (namespace, position, around),
            ).fetchall()
            found += [
                (sign * (index + 1), sqlite_rows.memory(row, cut)) for index, row in enumerate(rows)
            ]
        out[entry_id] = sorted(found, key=lambda item: item[0])
    return out
