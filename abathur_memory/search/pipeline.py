"""The one retrieval pipeline, under document_search and memory_search.

Read top to bottom, a search is:

1. the query checked, and its keyword terms (stopwords dropped);
2. the space that would answer, read to decide whether a query vector can be used;
3. the query vector, embedded outside any transaction (or a reason to answer from keywords);
4. in one read snapshot of the store: the space again, keyword candidates (BM25 on SQLite,
   ts_rank_cd on PostgreSQL), vector candidates (exact re-rank of a coarse pass on SQLite,
   HNSW on PostgreSQL), their reciprocal rank fusion, and the rows of the fused hits;
5. hits with the parts of their score and a snippet.

A memory search at a past time (``as_of``) takes the same steps over the versions live
then, which the indexes do not hold (then.py).

Callers bring the scope already decided by policy: the roots a principal may see, or the
principal whose readable namespaces bound a memory search. Catching the indexes up is the
background workers' job; nothing here writes.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TypeVar

from abathur_memory.core.documents import Vector
from abathur_memory.core.records import MemoryEntry, record_fields
from abathur_memory.core.replies import DEFAULT_BOUNDS, Bounds, fitting
from abathur_memory.core.search import (
    CandidateQuery,
    ChunkRow,
    DocumentScope,
    MemoryRow,
    MemoryScope,
    Ranked,
)
from abathur_memory.core.spaces import Space
from abathur_memory.embedders.base import Embedder
from abathur_memory.errors import Unavailable
from abathur_memory.search.fusion import fuse, memory_fusion
from abathur_memory.search.packing import pack
from abathur_memory.search.query import Mode, check_k, check_mode, check_query, keyword_terms
from abathur_memory.search.results import (
    Hit,
    MemoryHit,
    MemoryNeighbour,
    MemorySearchResult,
    SearchResult,
)
from abathur_memory.search.snippets import snippet
from abathur_memory.store.protocols import SearchStore, SpaceStore

log = logging.getLogger(__name__)

H = TypeVar("H", Hit, MemoryHit)

CANDIDATES = 100  # per list, before fusion
MEMORY_SNIPPET_CHARS = 200
NOTHING_INDEXED = "nothing is indexed yet: run `abathur-memory index DIR`"
NO_MODEL = "no embedding model is configured; answered from keywords"
MEMORIES_NOT_EMBEDDED = (
    "memories are not embedded for the configured model yet (the background indexer starts "
    "with the server); answered from keywords"
)
SPACE_CHANGED = "the index was rebuilt for another model during the search; answered from keywords"


class Retrieval:
    def __init__(
        self,
        search: SearchStore,
        spaces: SpaceStore,
        embedder: Embedder | None,
        *,
        bounds: Bounds = DEFAULT_BOUNDS,
    ):
        self.search = search
        self.spaces = spaces
        self.embedder = embedder
        self.bounds = bounds  # hits fit one reply; memory values are cut (core/replies.py)

    async def documents(self, query: str, k: int, mode: str, scope: DocumentScope) -> SearchResult:
        query, k, wanted = check_query(query), check_k(k), check_mode(mode)
        result = SearchResult(query=query, mode=wanted, mode_used=wanted)
        space = await self.spaces.active()
        if space is None:
            result.degraded = NOTHING_INDEXED
            result.mode_used = "keyword" if wanted != "semantic" else "semantic"
            return result
        result.model = space.identity.model_id
        vector: Vector | None = None
        if wanted != "keyword":
            vector, result.degraded, result.embed_ms = await self.query_vector(query, space)
        result.mode_used = mode_used_for(wanted, vector)
        started = time.perf_counter()
        terms = keyword_terms(query)
        candidates = CandidateQuery(
            terms=tuple(terms) if result.mode_used != "semantic" else (),
            vector=vector,
            identity=self._identity(),
            pool=max(CANDIDATES, k * 5),
            k=k,
        )
        found = await self.search.chunks(candidates, scope, fuse)
        if vector is not None and not found.vector_used:
            result.degraded, result.mode_used = SPACE_CHANGED, "keyword"
        if found.space is not None:
            result.model = found.space.identity.model_id
        result.vector_search = found.vector_path
        hits = [
            _document_hit(ranked, found.rows[ranked.id], terms)
            for ranked in found.ranked
            if ranked.id in found.rows
        ]
        result.results, result.omitted = self.fitted(hits)
        result.search_ms = (time.perf_counter() - started) * 1000
        return result

    async def memories(
        self,
        query: str,
        k: int,
        mode: str,
        scope: MemoryScope,
        *,
        context: int = 0,
        max_tokens: int | None = None,
    ) -> MemorySearchResult:
        query, k, wanted = check_query(query), check_k(k), check_mode(mode)
        degraded: str | None = None
        vector: Vector | None = None
        if wanted != "keyword":
            space = None
            if self.embedder is not None:
                space = await self.spaces.memory_space(self.embedder.identity)
            vector, degraded, _ = await self.query_vector(query, space, memories=True)
        mode_used = mode_used_for(wanted, vector)
        terms = keyword_terms(query)
        candidates = CandidateQuery(
            terms=tuple(terms) if mode_used != "semantic" else (),
            vector=vector,
            identity=self._identity(),
            pool=CANDIDATES,
            k=k,
            cut=self.bounds.field_bytes,
        )
        found = await self.search.memories(candidates, scope, memory_fusion(query))
        if vector is not None and not found.vector_used:
            degraded, mode_used = MEMORIES_NOT_EMBEDDED, "keyword"
        rows = [found.rows[ranked.id] for ranked in found.ranked if ranked.id in found.rows]
        neighbours: dict[int, list[tuple[int, MemoryEntry]]] = {}
        if context and rows:
            neighbours = await self.search.memory_neighbours(
                [(row.entry.id, row.entry.namespace, row.position) for row in rows],
                context,
                self.bounds.field_bytes,
            )
        hits = [
            memory_hit(ranked, found.rows[ranked.id], terms, neighbours, bool(context))
            for ranked in found.ranked
            if ranked.id in found.rows
        ]
        return self.memory_result(
            query, hits, mode_used, degraded, max_tokens, found.pending, found.vector_path
        )

    def memory_result(
        self,
        query: str,
        hits: list[MemoryHit],
        mode_used: str,
        degraded: str | None,
        max_tokens: int | None,
        pending: int = 0,
        vector_search: str | None = None,
    ) -> MemorySearchResult:
        """The reply: the hits packed into ``max_tokens`` if asked, then cut to one reply."""
        packed = None
        if max_tokens is not None:
            hits, packed = pack(hits, max_tokens)
        fitted, omitted = self.fitted(hits)
        return MemorySearchResult(
            query=query,
            mode_used=mode_used,
            degraded=degraded,
            pending=pending,
            results=fitted,
            omitted=omitted,
            packed=packed,
            vector_search=vector_search,
        )

    def fitted(self, hits: list[H]) -> tuple[list[H], int | None]:
        """The best hits that fit one reply, and how many were left out (None: none)."""
        kept = fitting(hits, self.bounds.reply_bytes)
        return hits[:kept], (len(hits) - kept) or None

    def _identity(self) -> str | None:
        return self.embedder.identity.key() if self.embedder is not None else None

    async def query_vector(
        self, query: str, space: Space | None, *, memories: bool = False
    ) -> tuple[Vector | None, str | None, float]:
        """The query vector for ``space``, or why there is none; and the time to embed."""
        embedder = self.embedder
        if embedder is None:
            return None, NO_MODEL, 0.0
        if space is None:
            return None, MEMORIES_NOT_EMBEDDED if memories else NOTHING_INDEXED, 0.0
        if not space.identity.same_vectors(embedder.identity):
            differs = "; ".join(space.identity.differences(embedder.identity))
            return (
                None,
                f"the index was built for other vectors than the configured model's "
                f"({space.identity.model_id} -> {embedder.model_id}: {differs}); semantic "
                "search resumes when the rebuild completes (answered from keywords)",
                0.0,
            )
        started = time.perf_counter()
        try:
            vector = await embedder.embed_query(query)
        except Unavailable as exc:
            log.warning("semantic search unavailable: %s", exc)
            return None, f"the embedding model is unavailable ({exc}); answered from keywords", 0.0
        return vector, None, (time.perf_counter() - started) * 1000


def mode_used_for(wanted: Mode, vector: Vector | None) -> str:
    return "keyword" if vector is None and wanted != "keyword" else wanted


def _document_hit(ranked: Ranked, row: ChunkRow, terms: list[str]) -> Hit:
    return Hit(
        path=row.file_path,
        root=row.root_name,
        title=row.title,
        heading=row.heading_path,
        start_line=row.start_line,
        end_line=row.end_line,
        snippet=snippet(row.text, terms),
        score=round(ranked.score, 6),
        keyword_score=_rounded(ranked.keyword_score),
        keyword_rank=ranked.keyword_rank,
        semantic_score=_rounded(ranked.semantic_score),
        semantic_rank=ranked.semantic_rank,
        document_type=row.document_type,
        tags=row.tags,
        changed_since_indexed=_changed(row),
        chunk_id=row.id,
    )


def memory_hit(
    ranked: Ranked,
    row: MemoryRow,
    terms: list[str],
    neighbours: dict[int, list[tuple[int, MemoryEntry]]],
    with_context: bool,
) -> MemoryHit:
    entry = row.entry
    return MemoryHit(
        **record_fields(entry),
        score=round(ranked.score, 6),
        keyword_rank=ranked.keyword_rank,
        semantic_rank=ranked.semantic_rank,
        semantic_score=_rounded(ranked.semantic_score),
        snippet=snippet(row.text, terms, MEMORY_SNIPPET_CHARS),
        context=[
            MemoryNeighbour(
                key=near.key,
                version=near.version,
                offset=offset,
                value=near.value,
                memory_type=near.memory_type,
                updated_at=near.updated_at,
                truncated=near.truncated,
            )
            for offset, near in neighbours.get(entry.id, [])
        ]
        if with_context
        else None,
    )


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, 4)


def _changed(row: ChunkRow) -> bool:
    """True when the file on disk is not what the chunks were built from."""
    if row.indexed_hash != row.content_hash:
        return True
    path = os.path.join(row.root_path, row.file_path.partition("/")[2])
    try:
        info = os.stat(path)
    except OSError:
        return True
    return info.st_size != row.size_bytes or info.st_mtime_ns != row.mtime_ns
