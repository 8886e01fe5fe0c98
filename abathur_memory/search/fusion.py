"""Reciprocal rank fusion of the keyword and the vector candidate lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from abathur_memory.core.memory_units import named_in
from abathur_memory.core.search import CandidateFacts, MemoryFuse, Ranked
from abathur_memory.core.when import Span, overlaps, spans_in

RRF_K = 60


def fuse(
    keyword: Sequence[tuple[int, float]], semantic: Sequence[tuple[int, float | None]], k: int
) -> list[Ranked]:
    """The best ``k`` by the sum of 1 / (60 + rank) over the lists a candidate appears in,
    each with its ranks and scores in both lists (the parts of its score). Scores are
    carried, never weighed: a semantic score left None stays None."""
    scores: dict[int, float] = {}
    for ranked in (keyword, semantic):
        for rank, (cid, _) in enumerate(ranked, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (RRF_K + rank)
    best = sorted(scores.items(), key=lambda item: -item[1])[:k]
    return _with_parts(best, keyword, semantic)


def _with_parts(
    best: list[tuple[int, float]],
    keyword: Sequence[tuple[int, float]],
    semantic: Sequence[tuple[int, float | None]],
) -> list[Ranked]:
    """The fused order, each with its rank and score in each list (the parts of its score)."""
    keyword_at = {cid: (rank, score) for rank, (cid, score) in enumerate(keyword, start=1)}
    semantic_at = {cid: (rank, score) for rank, (cid, score) in enumerate(semantic, start=1)}
    fused = []
    for cid, score in best:
        kw, sem = keyword_at.get(cid), semantic_at.get(cid)
        fused.append(
            Ranked(
                id=cid,
                score=score,
                keyword_rank=kw[0] if kw else None,
                keyword_score=kw[1] if kw else None,
                semantic_rank=sem[0] if sem else None,
                semantic_score=sem[1] if sem else None,
            )
        )
    return fused


# Memories: a convex combination of z-normalised scores, decided by measurement
# (bench/memory_fusion_study.py, docs/retrieval.md). Reciprocal rank fusion gives a weak list
# the same say as a strong one, which pulled good keyword hits down on conversations
# (LoCoMo hybrid R@10 0.634 against keyword alone 0.646); scores carry how sure each list
# is. SEMANTIC_WEIGHT is the semantic side's share; CONTEXT_WEIGHT how much a memory's
# context vector counts beside its own (both max-normalised); TIME_BOOST what a memory
# whose moment lies in a time the query names gains, and SPEAKER_BOOST what an utterance
# whose speaker the query names gains ("What did Nora say about the trip?"), in standard
# deviations of the fused score.
SEMANTIC_WEIGHT = 0.4
CONTEXT_WEIGHT = 2.0
TIME_BOOST = 0.25
SPEAKER_BOOST = 1.5


def _max_normalised(ranked: list[tuple[int, float]]) -> dict[int, float]:
    top = max((score for _, score in ranked), default=0.0)
    if top <= 0:
        return {cid: 0.0 for cid, _ in ranked}
    return {cid: score / top for cid, score in ranked}


def _z(ranked: dict[int, float]) -> dict[int, float]:
    """Standard scores; a list of one (or of equal scores) is all zeros."""
    if not ranked:
        return {}
    values = list(ranked.values())
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    if spread == 0:
        return dict.fromkeys(ranked, 0.0)
    return {cid: (v - mean) / spread for cid, v in ranked.items()}


def semantic_with_context(
    semantic: list[tuple[int, float]], context: list[tuple[int, float]]
) -> dict[int, float]:
    """Each memory's own similarity plus CONTEXT_WEIGHT times its context vector's."""
    own, around = _max_normalised(semantic), _max_normalised(context)
    return {
        cid: own.get(cid, 0.0) + CONTEXT_WEIGHT * around.get(cid, 0.0) for cid in {*own, *around}
    }


def memory_boosts(
    query: str, spans: list[Span], facts: dict[int, CandidateFacts]
) -> dict[int, float]:
    """What each candidate gains for happening in a time the query names and for being said
    by someone the query names."""
    named = named_in(query, {f.speaker for f in facts.values() if f.speaker})
    boosts: dict[int, float] = {}
    for cid, fact in facts.items():
        gain = TIME_BOOST if overlaps(fact.moment, spans) else 0.0
        if fact.speaker is not None and fact.speaker in named:
            gain += SPEAKER_BOOST
        if gain:
            boosts[cid] = gain
    return boosts


def memory_fusion(query: str, now: dt.datetime | None = None) -> MemoryFuse:
    """The fusion for one memory query (its times and names read once)."""
    spans = spans_in(query, now)

    def fuse_for_query(
        keyword: list[tuple[int, float]],
        semantic: list[tuple[int, float]],
        context: list[tuple[int, float]],
        k: int,
        facts: dict[int, CandidateFacts],
    ) -> list[Ranked]:
        return fuse_memories(keyword, semantic, context, k, memory_boosts(query, spans, facts))

    return fuse_for_query


def fuse_memories(
    keyword: list[tuple[int, float]],
    semantic: list[tuple[int, float]],
    context: list[tuple[int, float]],
    k: int,
    boosts: dict[int, float] | None = None,
) -> list[Ranked]:
    """The best ``k`` memories by (1 - w) z(keyword) + w z(semantic with context) (a list
    that is empty counts for nothing: keyword or semantic mode), plus their ``boosts``;
    each with its ranks and scores in the keyword and semantic lists."""
    boosts = boosts or {}
    meaning = semantic_with_context(semantic, context)
    kz, sz = _z(dict(keyword)), _z(meaning)
    k_floor, s_floor = min(kz.values(), default=0.0), min(sz.values(), default=0.0)
    weight = SEMANTIC_WEIGHT if kz and sz else (1.0 if sz else 0.0)
    scores = {
        cid: (1 - weight) * kz.get(cid, k_floor)
        + weight * sz.get(cid, s_floor)
        + boosts.get(cid, 0.0)
        for cid in {*kz, *sz}
    }
    best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
    return _with_parts(best, keyword, semantic)
