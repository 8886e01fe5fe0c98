"""memory_search: keyword and semantic search over the memories the caller may read.

The same engine as document search (BM25 on memory_fts, coarse + exact vectors, reciprocal
rank fusion), restricted by the namespace policy in SQL, so nothing unreadable is even
ranked. A prefix narrows the search to one namespace subtree (and is itself checked).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from abathur_memory.core.records import MemoryEntry
from abathur_memory.errors import InvalidInput, Unavailable
from abathur_memory.indexer import memory_index, vector_index
from abathur_memory.indexer.embedders.base import Embedder
from abathur_memory.indexer.search import (
    MODES,
    check_query,
    fts_match,
    fts_terms,
    fuse,
    snippet,
)
from abathur_memory.indexer.spaces import Space
from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.namespaces import Access, Principal, validate_prefix
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite import rows as sqlite_rows
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.readable import readable_sql

log = logging.getLogger(__name__)

CANDIDATES = 100


@dataclass
class MemoryHit:
    entry: MemoryEntry
    score: float
    keyword_rank: int | None
    semantic_rank: int | None
    semantic_score: float | None
    snippet: str

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.entry.model_dump(exclude={"id"}),
            "score": round(self.score, 6),
            "keyword_rank": self.keyword_rank,
            "semantic_rank": self.semantic_rank,
            "semantic_score": None
            if self.semantic_score is None
            else round(self.semantic_score, 4),
            "snippet": self.snippet,
        }


@dataclass
class MemorySearchResult:
    query: str
    mode_used: str
    results: list[MemoryHit]
    degraded: str | None = None
    pending: int = 0  # memory changes not yet in the keyword index or not yet embedded


class MemorySearch:
    """Searches only read: the background MemoryIndexer keeps the indexes current, and what
    it has not reached yet is counted in ``pending``."""

    def __init__(
        self,
        db: Database,
        embedder: Embedder | None,
        cache: vector_index.VectorIndex,
        guard: AccessGuard,
    ) -> None:
        self.db = db
        self.embedder = embedder
        self.cache = cache
        self.guard = guard

    async def search(
        self,
        principal: Principal,
        query: str,
        prefix: str | None = None,
        k: int = 10,
        mode: str = "hybrid",
    ) -> MemorySearchResult:
        """Search what ``principal`` may read."""
        query = check_query(query)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100:
            raise InvalidInput("k must be between 1 and 100")
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if prefix is not None:
            segments = validate_prefix(prefix)
            await self.guard.check(principal, prefix, segments, Access.READ, "search")
        vector, degraded = None, None
        if mode != "keyword":
            vector, degraded = await self._query_vector(query)
        return await self.db.read(
            self._search_snapshot, principal, query, vector, degraded, prefix, k, mode
        )

    async def _query_vector(self, query: str) -> tuple[Any, str | None]:
        if self.embedder is None:
            return None, "no embedding model is configured; answered from keywords"
        try:
            return await self.embedder.embed_query(query), None
        except Unavailable as exc:
            return None, f"the embedding model is unavailable ({exc}); answered from keywords"

    def _search_snapshot(
        self,
        conn: driver.Connection,
        principal: Principal,
        query: str,
        vector: Any,
        degraded: str | None,
        prefix: str | None,
        k: int,
        mode: str,
    ) -> MemorySearchResult:
        """Everything in one read transaction: the space, the pending counts, the search."""
        space = None
        if self.embedder is not None:
            space = memory_index.memory_space(conn, self.embedder.identity)
        keyword_lag = memory_index.changes_behind(conn)
        vector_lag = 0
        if self.embedder is not None:
            vector_lag = memory_index.vectors_behind(conn, space)
        result = MemorySearchResult(query, mode, [], degraded, keyword_lag + vector_lag)
        if vector is not None and space is None:
            vector = None
            result.degraded = (
                "memories are not embedded for the configured model yet (the background "
                "indexer starts with the server); answered from keywords"
            )
        if vector is None and mode != "keyword":
            result.mode_used = "keyword"
        result.results = self._run(
            conn, principal, space, query, vector, prefix, k, result.mode_used
        )
        return result

    def _run(
        self,
        conn: driver.Connection,
        principal: Principal,
        space: Space | None,
        query: str,
        vector: Any,
        prefix: str | None,
        k: int,
        mode: str,
    ) -> list[MemoryHit]:
        where, params = readable_sql(principal, prefix)
        keyword: list[tuple[int, float]] = []
        terms = fts_terms(query)
        if mode in ("hybrid", "keyword") and terms:
            match = fts_match(terms)
            keyword = [
                (row[0], -row[1])
                for row in conn.execute(
                    "SELECT f.rowid, bm25(memory_fts, 0.0, 2.0, 1.0) AS score"
                    " FROM memory_fts AS f JOIN memory_fts_keys AS k ON k.entry_id = f.rowid"
                    f" WHERE memory_fts MATCH ? AND {where} ORDER BY score LIMIT ?",
                    [match, *params, CANDIDATES],
                )
            ]
        semantic: list[tuple[int, float]] = []
        if vector is not None and space is not None:
            allowed = np.array(
                [
                    r[0]
                    for r in conn.execute(
                        f"SELECT v.id FROM {space.memory_vectors} AS v"
                        " JOIN memory_fts_keys AS k ON k.entry_id = v.entry_id"
                        f" WHERE {where}",
                        params,
                    )
                ],
                dtype=np.int64,
            )
            codes = self.cache.codes(conn, space, space.memory_vectors)
            candidates = vector_index.coarse(codes, vector, vector_index.COARSE_CANDIDATES, allowed)
            semantic = _rerank_entries(conn, space, vector, candidates)
        fused = fuse(keyword, semantic)[:k]
        if not fused:
            return []
        keyword_rank = {eid: rank for rank, (eid, _) in enumerate(keyword, start=1)}
        semantic_rank = {eid: (rank, s) for rank, (eid, s) in enumerate(semantic, start=1)}
        ids = [eid for eid, _ in fused]
        rows = {
            r["id"]: r
            for r in conn.execute(
                f"SELECT m.*, f.text AS search_text FROM memory_entries AS m"
                f" JOIN memory_fts AS f ON f.rowid = m.id"
                f" WHERE m.id IN ({','.join('?' for _ in ids)})",
                ids,
            )
        }
        hits = []
        for entry_id, score in fused:
            row = rows.get(entry_id)
            if row is None:
                continue
            sem = semantic_rank.get(entry_id)
            hits.append(
                MemoryHit(
                    entry=sqlite_rows.memory(row),
                    score=score,
                    keyword_rank=keyword_rank.get(entry_id),
                    semantic_rank=sem[0] if sem else None,
                    semantic_score=sem[1] if sem else None,
                    snippet=snippet(row["search_text"], terms, 200),
                )
            )
        return hits


def _rerank_entries(
    conn: driver.Connection, space: Space, vector: Any, candidates: Any
) -> list[tuple[int, float]]:
    """Exact similarity of candidate parts; each memory scored by its best part."""
    if len(candidates) == 0:
        return []
    id_list = [int(i) for i in candidates]
    rows = conn.execute(
        f"SELECT entry_id, embedding FROM {space.memory_vectors}"
        f" WHERE id IN ({','.join('?' for _ in id_list)})",
        id_list,
    ).fetchall()
    if not rows:
        return []
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(
        len(rows), space.dim
    )
    scores = matrix @ vector
    best: dict[int, float] = {}
    for (entry_id, _), score in zip(rows, scores, strict=True):
        if score > best.get(entry_id, -2.0):
            best[entry_id] = float(score)
    return sorted(best.items(), key=lambda item: -item[1])[:CANDIDATES]
