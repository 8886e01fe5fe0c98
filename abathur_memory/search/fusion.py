"""Reciprocal rank fusion of the keyword and the vector candidate lists."""

from __future__ import annotations

from abathur_memory.core.search import Ranked

RRF_K = 60


def fuse(
    keyword: list[tuple[int, float]], semantic: list[tuple[int, float]], k: int
) -> list[Ranked]:
    """The best ``k`` by the sum of 1 / (60 + rank) over the lists a candidate appears in,
    each with its ranks and scores in both lists (the parts of its score)."""
    keyword_at = {cid: (rank, score) for rank, (cid, score) in enumerate(keyword, start=1)}
    semantic_at = {cid: (rank, score) for rank, (cid, score) in enumerate(semantic, start=1)}
    scores: dict[int, float] = {}
    for ranked in (keyword, semantic):
        for rank, (cid, _) in enumerate(ranked, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (RRF_K + rank)
    best = sorted(scores.items(), key=lambda item: -item[1])[:k]
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
