"""memory_search at a past time (``as_of``): what the store knew then, ranked as a search
over it ranks.

The indexes hold the live versions only, so a memory changed since would be ranked by words
it did not have then, and one deleted since would not be found. Here the candidates are the
versions live at that time (the memory service lists them, within the caller's scope and
filters) and both lists are made from them:

1. the keyword list by the backend's own ranking over their words (``rank_texts``: BM25 in
   a scratch FTS5 table on SQLite, the live search's score on PostgreSQL);
2. the semantic list from each version's vectors: those the memory indexer stored (the
   versions still live), the others embedded now, at most MAX_EMBEDDED a search (past that
   the list ranks the stored ones and ``degraded`` says so);
3. the same fusion as a live search (time and speaker boosts included).

A version's neighbours are not used (the live index's windows are today's), so a hit has
no ``context``. The cost is a pass over the versions listed: as_of searches are for audits
and looking back, not the hot path (memory/memories.py bounds how many are listed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from abathur_memory.core.documents import Vector
from abathur_memory.core.memory_text import memory_text
from abathur_memory.core.memory_units import speaker_of
from abathur_memory.core.records import MemoryEntry
from abathur_memory.core.search import CandidateFacts, MemoryFilters, MemoryRow
from abathur_memory.core.when import memory_moment
from abathur_memory.search.fusion import memory_fusion
from abathur_memory.search.memory_indexer import memory_parts
from abathur_memory.search.pipeline import CANDIDATES, Retrieval, memory_hit, mode_used_for
from abathur_memory.search.query import check_k, check_mode, check_query, keyword_terms
from abathur_memory.search.results import MemorySearchResult

MAX_EMBEDDED = 256  # versions without a stored vector embedded by one search


@dataclass(frozen=True)
class Then:
    """What was live at the time asked about, and how a hit is shown."""

    entries: Sequence[MemoryEntry]  # the versions live then in scope, values whole
    # the filters the listing could not apply: the memory's time span and metadata
    filters: MemoryFilters
    # the hits' entries as listings show them (long values cut, core/replies.py)
    shown: Callable[[list[MemoryEntry]], Awaitable[list[MemoryEntry]]]


async def search_then(
    retrieval: Retrieval,
    query: str,
    k: int,
    mode: str,
    then: Then,
    *,
    max_tokens: int | None = None,
) -> MemorySearchResult:
    query, k, wanted = check_query(query), check_k(k), check_mode(mode)
    filters = then.filters
    entries = [e for e in then.entries if e.redacted_at is None and _metadata_kept(e, filters)]
    facts_of: dict[int, CandidateFacts] = {}
    if filters.after is not None or filters.before is not None:  # a span: every moment
        facts_of = await _facts(retrieval, entries)
        entries = [e for e in entries if _in_span(facts_of[e.id].moment, filters)]
    texts = [memory_text(entry.key, entry.value) for entry in entries]
    vector: Vector | None = None
    degraded: str | None = None
    semantic: list[tuple[int, float]] = []
    if wanted != "keyword":
        semantic, vector, degraded = await _semantic(retrieval, query, entries, texts)
    mode_used = mode_used_for(wanted, vector)
    terms = keyword_terms(query)
    keyword: list[tuple[int, float]] = []
    if mode_used != "semantic":
        docs = [(entry.key, text) for entry, text in zip(entries, texts, strict=True)]
        found = await retrieval.search.rank_texts(tuple(terms), docs, CANDIDATES)
        keyword = [(entries[number].id, score) for number, score in found]
    by_id = {entry.id: (entry, text) for entry, text in zip(entries, texts, strict=True)}
    candidates = {c for c, _ in (*keyword, *semantic)}
    if not facts_of:  # no span asked: the fusion's boosts need only the candidates'
        facts_of = await _facts(retrieval, [by_id[c][0] for c in candidates])
    facts = {cid: facts_of[cid] for cid in candidates}
    ranked = memory_fusion(query)(keyword, semantic, [], k, facts)
    shown = {entry.id: entry for entry in await then.shown([by_id[r.id][0] for r in ranked])}
    hits = [
        memory_hit(r, MemoryRow(shown[r.id], by_id[r.id][1]), terms, {}, False)
        for r in ranked
        if r.id in shown
    ]
    return retrieval.memory_result(query, hits, mode_used, degraded, max_tokens)


async def _semantic(
    retrieval: Retrieval, query: str, entries: list[MemoryEntry], texts: list[str]
) -> tuple[list[tuple[int, float]], Vector | None, str | None]:
    """The semantic list (each version's best part), the query vector, and why the search
    is lesser if it is."""
    embedder = retrieval.embedder
    if embedder is None:
        vector, degraded, _ = await retrieval.query_vector(query, None, memories=True)
        return [], vector, degraded
    space, parts = await retrieval.search.memory_parts(
        embedder.identity.key(), [entry.id for entry in entries]
    )
    vector, degraded, _ = await retrieval.query_vector(query, space, memories=True)
    if vector is None:
        return [], None, degraded
    missing = [n for n, entry in enumerate(entries) if entry.id not in parts]
    if len(missing) > MAX_EMBEDDED:
        degraded = (
            f"{len(missing)} of the versions live then have no stored vector (changed or "
            f"deleted since), more than one search embeds ({MAX_EMBEDDED}): the semantic "
            "list ranks the others; narrow the search with prefix or memory_type"
        )
    elif missing:
        pieces = [
            (n, piece)
            for n in missing
            for piece in memory_parts(embedder, f"{entries[n].key}: {texts[n]}")
        ]
        matrix = await embedder.embed_documents([piece for _, piece in pieces])
        for (n, _), row in zip(pieces, matrix, strict=True):
            parts.setdefault(entries[n].id, []).append(np.asarray(row, dtype=np.float32))
    query_vector = np.asarray(vector, dtype=np.float32)
    scores = {
        entry_id: float(max(float(np.dot(part, query_vector)) for part in found))
        for entry_id, found in parts.items()
        if found
    }
    best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:CANDIDATES]
    return best, vector, degraded


def _metadata_kept(entry: MemoryEntry, filters: MemoryFilters) -> bool:
    """Metadata equality as a live search applies it in SQL (readable.py's
    memory_filter_sql): a boolean matches only a boolean."""
    for name, wanted in filters.metadata:
        held = entry.metadata.get(name)
        if isinstance(wanted, bool) or isinstance(held, bool):
            if not (isinstance(held, bool) and isinstance(wanted, bool) and held is wanted):
                return False
        elif not isinstance(held, str | int | float) or held != wanted:
            return False
    return True


def _in_span(moment: datetime | None, filters: MemoryFilters) -> bool:
    """after <= moment < before, as the live search's span filter."""
    if moment is None:
        return False
    if filters.after is not None and moment < filters.after:
        return False
    return filters.before is None or moment < filters.before


async def _facts(retrieval: Retrieval, entries: list[MemoryEntry]) -> dict[int, CandidateFacts]:
    """When each happened (the date its value names, else when it was first stored: read
    only for those whose value names none) and who said it, as the index records them for
    a live version."""
    named = {entry.id: memory_moment(entry.value) for entry in entries}
    unnamed = {(e.namespace, e.key) for e in entries if named[e.id] is None}
    first = await retrieval.search.first_stored(list(unnamed)) if unnamed else {}
    return {
        e.id: CandidateFacts(named[e.id] or first.get((e.namespace, e.key)), speaker_of(e.value))
        for e in entries
    }
