"""Hybrid search: BM25 (FTS5) and vector candidates fused by reciprocal rank fusion.

Modes: ``hybrid`` (default), ``keyword``, ``semantic``. Filters (root, path glob, tags,
document type) restrict both candidate lists. If the embedder cannot be used, a hybrid or
semantic search answers from keywords alone and says so (``mode_used`` and ``degraded``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from abathur_memory.errors import InvalidInput, Unavailable
from abathur_memory.indexer import roots as roots_mod
from abathur_memory.indexer import vector_index
from abathur_memory.indexer.embedders.base import Embedder
from abathur_memory.indexer.spaces import Space, active_space
from abathur_memory.memory.namespaces import Principal
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite.database import Database

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "keyword", "semantic"]
MODES = ("hybrid", "keyword", "semantic")
MAX_QUERY_CHARS = 2000
MAX_K = 100
RRF_K = 60
CANDIDATES = 100  # per list, before fusion
SNIPPET_CHARS = 280
MAX_QUERY_TERMS = 32
COMMON_TERM_CHUNKS = 5000  # a term in more chunks than this is dropped if rarer ones remain

# Words too common to help a BM25 match (and costly: their posting lists are huge).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "not",
        "no",
        "we",
        "our",
        "they",
        "them",
        "he",
        "she",
        "his",
        "her",
    ]
)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class Filters:
    root: str | None = None
    path_glob: str | None = None
    tags: list[str] = field(default_factory=list)
    document_type: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.root or self.path_glob or self.tags or self.document_type)


class Hit(BaseModel):
    """One matching section of a document."""

    path: str = Field(description="'<root>/<path within the root>': pass it to document_get.")
    root: str
    title: str
    heading: list[str] = Field(description="Heading path of the section.")
    start_line: int
    end_line: int
    snippet: str
    score: float = Field(description="Fused (reciprocal rank) score.")
    keyword_score: float | None
    keyword_rank: int | None
    semantic_score: float | None
    semantic_rank: int | None
    document_type: str | None
    tags: list[str]
    changed_since_indexed: bool = Field(description="The file changed after it was indexed.")
    chunk_id: int

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


@dataclass
class SearchResult:
    query: str
    mode: str
    mode_used: str
    results: list[Hit]
    degraded: str | None = None
    model: str | None = None
    search_ms: float = 0.0
    embed_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "mode": self.mode,
            "mode_used": self.mode_used,
            "degraded": self.degraded,
            "model": self.model,
            "results": [h.as_dict() for h in self.results],
            "search_ms": round(self.search_ms, 2),
            "embed_ms": round(self.embed_ms, 2),
        }


class SearchEngine:
    def __init__(self, db: Database, embedder: Embedder | None, cache: vector_index.VectorIndex):
        self.db = db
        self.embedder = embedder
        self.cache = cache

    async def search(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        filters: Filters | None = None,
        *,
        principal: Principal | None = None,
    ) -> SearchResult:
        """Search the roots ``principal`` may see (None: every root)."""
        query = check_query(query)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be between 1 and {MAX_K}")
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        filters = filters or Filters()
        space = await self.db.read(active_space)
        result = SearchResult(query, mode, mode, [])
        if space is None:
            result.degraded = "nothing is indexed yet: run `abathur-memory index DIR`"
            result.mode_used = "keyword" if mode != "semantic" else "semantic"
            return result
        result.model = space.identity.model_id
        vector: npt.NDArray[np.float32] | None = None
        if mode != "keyword":
            vector, reason = await self._query_vector(query, space)
            result.embed_ms = reason[1]
            if vector is None:
                result.degraded = reason[0]
                result.mode_used = "keyword"
        started = time.perf_counter()
        terms = fts_terms(query)
        use_keyword = result.mode_used in ("hybrid", "keyword")
        hits = await self.db.read(
            self._run, space, query, terms if use_keyword else [], vector, k, filters, principal
        )
        result.search_ms = (time.perf_counter() - started) * 1000
        result.results = hits
        return result

    async def _query_vector(
        self, query: str, space: Space
    ) -> tuple[npt.NDArray[np.float32] | None, tuple[str | None, float]]:
        embedder = self.embedder
        if embedder is None:
            return None, ("no embedding model is configured; answered from keywords", 0.0)
        if embedder.identity.key() != space.identity.key():
            return None, (
                f"the index was built with {space.identity.model_id} and the configured model "
                f"is {embedder.model_id}; semantic search resumes when the rebuild completes "
                "(answered from keywords)",
                0.0,
            )
        started = time.perf_counter()
        try:
            vector = await embedder.embed_query(query)
        except Unavailable as exc:
            log.warning("semantic search unavailable: %s", exc)
            return None, (
                f"the embedding model is unavailable ({exc}); answered from keywords",
                0.0,
            )
        return vector, (None, (time.perf_counter() - started) * 1000)

    def _run(
        self,
        conn: driver.Connection,
        space: Space,
        query: str,
        terms: list[str],
        vector: npt.NDArray[np.float32] | None,
        k: int,
        filters: Filters,
        principal: Principal | None,
    ) -> list[Hit]:
        where, params = _filter_sql(conn, filters, principal)
        pool = max(CANDIDATES, k * 5)
        keyword: list[tuple[int, float]] = []
        if terms:
            keyword = _bm25(conn, space, terms, where, params, pool)
        semantic: list[tuple[int, float]] = []
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
            codes = self.cache.codes(conn, space)
            candidates = vector_index.coarse(
                codes, vector, vector_index.candidates_for(codes, pool), allowed
            )
            semantic = vector_index.rerank(conn, space, vector, candidates, pool)
        fused = fuse(keyword, semantic)[:k]
        return _hits(conn, space, fused, keyword, semantic, query)


def fts_terms(query: str) -> list[str]:
    """Query words worth matching: stopwords dropped (unless nothing else is left)."""
    words = [w.lower() for w in _WORD.findall(query)]
    kept = [w for w in words if w not in STOPWORDS] or words
    unique = list(dict.fromkeys(kept))
    return unique[:MAX_QUERY_TERMS]


def fts_match(terms: list[str]) -> str:
    """An FTS5 query matching any of the terms, each quoted (no operator injection)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def fuse(
    keyword: list[tuple[int, float]], semantic: list[tuple[int, float]]
) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: sum of 1 / (60 + rank) over the lists a chunk appears in."""
    scores: dict[int, float] = {}
    for ranked in (keyword, semantic):
        for rank, (chunk_id, _) in enumerate(ranked, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def check_query(query: Any) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(
            f"query is {len(query):,} characters; the limit is {MAX_QUERY_CHARS:,}: "
            "search for the key sentence instead"
        )
    if not _WORD.search(query):
        raise InvalidInput("query has no words to search for")
    return query.strip()


def _filter_sql(
    conn: driver.Connection, filters: Filters, principal: Principal | None
) -> tuple[str, list[Any]]:
    """A condition on ``d`` (document_index) for the filters and the roots ``principal``
    may see; ``"1"`` when nothing is excluded (so the fast unfiltered paths apply)."""
    clauses: list[str] = ["1"]
    params: list[Any] = []
    every = roots_mod.list_roots(conn)
    visible = roots_mod.list_roots(conn, principal)
    if len(visible) < len(every):
        clauses.append(f"d.root_id IN ({','.join('?' for _ in visible) or 'NULL'})")
        params.extend(root.id for root in visible)
    if filters.root is not None:
        root = next((r for r in visible if r.name == filters.root), None)
        if root is None:
            names = [r.name for r in visible]
            raise InvalidInput(
                f"no root named {filters.root!r}; roots: {', '.join(names) or '(none)'}"
            )
        clauses.append("d.root_id = ?")
        params.append(root.id)
    if filters.path_glob:
        matcher = path_matcher(filters.path_glob)
        ids = [
            row[0]
            for row in conn.execute("SELECT id, file_path FROM document_index")
            if matcher(row[1].partition("/")[2])
        ]
        clauses.append(f"d.id IN ({','.join('?' for _ in ids) or 'NULL'})")
        params.extend(ids)
    for tag in filters.tags:
        clauses.append("EXISTS (SELECT 1 FROM json_each(d.tags) WHERE value = ?)")
        params.append(tag.lower())
    if filters.document_type:
        clauses.append("d.document_type = ?")
        params.append(filters.document_type)
    return " AND ".join(clauses), params


def path_matcher(pattern: str) -> Callable[[str], bool]:
    """A glob matched against the path inside the root, case-sensitive: ``*`` and ``?``
    stay within one folder, ``**`` spans folders (``guides/*.md``, ``**/setup*.md``)."""
    if not pattern or len(pattern) > 512:
        raise InvalidInput("path_glob must be 1 to 512 characters")
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            regex += "[" + body.replace("\\", "\\\\") + "]"
            i = end + 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    compiled = re.compile(regex + r"\Z")
    return lambda path: compiled.match(path) is not None


def _bm25(
    conn: driver.Connection,
    space: Space,
    terms: list[str],
    where: str,
    params: list[Any],
    limit: int,
) -> list[tuple[int, float]]:
    terms = _without_common_terms(conn, space, terms)
    if where == "1":  # no filter: rank in FTS5 alone, join nothing before the LIMIT
        rows = conn.execute(
            f"SELECT rowid, bm25({space.fts}, 2.0, 1.0) AS score FROM {space.fts}"
            f" WHERE {space.fts} MATCH ? ORDER BY score LIMIT ?",
            [fts_match(terms), limit],
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT f.rowid, bm25({space.fts}, 2.0, 1.0) AS score FROM {space.fts} AS f"
            f" JOIN {space.chunks} AS c ON c.id = f.rowid"
            f" JOIN document_index AS d ON d.id = c.document_id"
            f" WHERE {space.fts} MATCH ? AND {where} ORDER BY score LIMIT ?",
            [fts_match(terms), *params, limit],
        ).fetchall()
    # bm25() is lower-is-better (negative); report it as a positive relevance.
    return [(row[0], -row[1]) for row in rows]


def _without_common_terms(conn: driver.Connection, space: Space, terms: list[str]) -> list[str]:
    """Drop terms that match more than COMMON_TERM_CHUNKS chunks when rarer ones remain.

    BM25 scores every posting of every OR-ed term, so a term in a third of the chunks costs
    tens of milliseconds at 100k chunks while its IDF makes it count for almost nothing.
    Counting stops at the cap, so the check itself stays cheap.
    """
    if len(terms) < 2:
        return terms
    rare = [
        term
        for term in terms
        if conn.execute(
            f"SELECT count(*) FROM (SELECT rowid FROM {space.fts} WHERE {space.fts} MATCH ?"
            " LIMIT ?)",
            (fts_match([term]), COMMON_TERM_CHUNKS + 1),
        ).fetchone()[0]
        <= COMMON_TERM_CHUNKS
    ]
    return rare or terms


def _hits(
    conn: driver.Connection,
    space: Space,
    fused: list[tuple[int, float]],
    keyword: list[tuple[int, float]],
    semantic: list[tuple[int, float]],
    query: str,
) -> list[Hit]:
    if not fused:
        return []
    keyword_rank = {cid: (rank, score) for rank, (cid, score) in enumerate(keyword, start=1)}
    semantic_rank = {cid: (rank, score) for rank, (cid, score) in enumerate(semantic, start=1)}
    ids = [cid for cid, _ in fused]
    marks = ",".join("?" for _ in ids)
    rows = {
        row["id"]: row
        for row in conn.execute(
            f"SELECT c.id, c.heading_path, c.start_line, c.end_line, c.text, d.file_path,"
            " d.title, d.document_type, d.tags, d.content_hash, d.size_bytes, d.mtime_ns,"
            " r.name AS root_name, r.path AS root_path, sd.content_hash AS indexed_hash"
            f" FROM {space.chunks} AS c JOIN document_index AS d ON d.id = c.document_id"
            " JOIN doc_roots AS r ON r.id = d.root_id"
            " LEFT JOIN space_documents AS sd ON sd.document_id = d.id AND sd.space_id = ?"
            f" WHERE c.id IN ({marks})",
            [space.id, *ids],
        )
    }
    terms = fts_terms(query)
    hits = []
    for chunk_id, score in fused:
        row = rows.get(chunk_id)
        if row is None:
            continue
        kw = keyword_rank.get(chunk_id)
        sem = semantic_rank.get(chunk_id)
        hits.append(
            Hit(
                path=row["file_path"],
                root=row["root_name"],
                title=row["title"],
                heading=json.loads(row["heading_path"]),
                start_line=row["start_line"],
                end_line=row["end_line"],
                snippet=snippet(row["text"], terms),
                score=round(score, 6),
                keyword_score=round(kw[1], 4) if kw else None,
                keyword_rank=kw[0] if kw else None,
                semantic_score=round(sem[1], 4) if sem else None,
                semantic_rank=sem[0] if sem else None,
                document_type=row["document_type"],
                tags=json.loads(row["tags"] or "[]"),
                changed_since_indexed=_changed(row),
                chunk_id=chunk_id,
            )
        )
    return hits


def _changed(row: driver.Row) -> bool:
    """True when the file on disk is not what the chunks were built from."""
    if row["indexed_hash"] != row["content_hash"]:
        return True
    path = os.path.join(row["root_path"], row["file_path"].partition("/")[2])
    try:
        info = os.stat(path)
    except OSError:
        return True
    return info.st_size != row["size_bytes"] or info.st_mtime_ns != row["mtime_ns"]


def snippet(text: str, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """A window of the chunk around the first query term, terms in **bold**."""
    flat = " ".join(text.split())
    stems = [t[: max(4, len(t) - 2)] for t in terms if len(t) > 1]
    pattern = (
        re.compile(r"\b(" + "|".join(re.escape(s) for s in stems) + r")\w*", re.IGNORECASE)
        if stems
        else None
    )
    start = 0
    if pattern is not None and (match := pattern.search(flat)):
        start = max(0, match.start() - width // 3)
        while start > 0 and flat[start - 1] != " ":
            start -= 1
    window = flat[start : start + width]
    if start + width < len(flat):
        cut = window.rfind(" ")
        window = (window[:cut] if cut > width // 2 else window) + " …"
    if start > 0:
        window = "… " + window
    if pattern is not None:
        window = pattern.sub(lambda m: f"**{m.group(0)}**", window)
    return window
