"""Retrieval quality on BEIR-format collections, through the real indexing path.

Each corpus document becomes a markdown file (``# title`` then the text), the folder is
indexed by ``DocumentService`` with the embedded default model (or ``--embedder``), and every
query runs through the search engine in keyword, semantic and hybrid modes. Results are
chunks; a document's rank is that of its best chunk. Prints one JSON object with nDCG@10 and
recall@100 per mode (and per fusion variant for hybrid).

    python -m bench.retrieval --dataset cranfield [--dataset nfcorpus] [--out FILE]
    python -m bench.retrieval --quick        # 200 documents, 20 queries: a smoke run

Data: ../shared/data/<name>/{corpus.jsonl, queries.jsonl, qrels.tsv} (not in the repo).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from abathur_memory.config import load_settings
from abathur_memory.runtime import build_runtime
from abathur_memory.search.query import keyword_terms
from abathur_memory.store.sqlite import vector_index
from abathur_memory.store.sqlite.search import _bm25
from abathur_memory.store.sqlite.store import SqliteStore
from bench.common import emit, markdown_stem, ndcg_at, read_beir, write_markdown

POOL = 300  # candidates per list, so that 100 distinct documents can come out


def load(name: str, max_docs: int | None, max_queries: int | None) -> dict[str, Any]:
    """The collection; with ``max_docs``, the judged documents of the kept queries filled up
    with others to that many."""
    corpus, queries, qrels = read_beir(name)
    queries = queries[:max_queries]
    if max_docs is not None:
        judged = {d for q in queries for d in qrels[q["_id"]]}
        chosen = [d for d in corpus if d["_id"] in judged]
        chosen += [d for d in corpus if d["_id"] not in judged][: max(0, max_docs - len(chosen))]
        corpus = chosen
    return {"corpus": corpus, "queries": queries, "qrels": qrels}


def recall_at(ranked: list[str], judged: dict[str, int], k: int = 100) -> float:
    return len(set(ranked[:k]) & set(judged)) / len(judged) if judged else 0.0


def rrf(lists: list[list[tuple[int, float]]], k: int = 60) -> list[int]:
    scores: dict[int, float] = defaultdict(float)
    for ranked in lists:
        for rank, (cid, _) in enumerate(ranked, start=1):
            scores[cid] += 1.0 / (k + rank)
    return [cid for cid, _ in sorted(scores.items(), key=lambda x: -x[1])]


def weighted(
    keyword: list[tuple[int, float]], semantic: list[tuple[int, float]], alpha: float
) -> list[int]:
    """Convex combination of min-max normalised scores (alpha on the semantic side)."""

    def norm(pairs: list[tuple[int, float]]) -> dict[int, float]:
        if not pairs:
            return {}
        values = [s for _, s in pairs]
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        return {cid: (s - low) / span for cid, s in pairs}

    kn, sn = norm(keyword), norm(semantic)
    combined = {
        cid: alpha * sn.get(cid, 0.0) + (1 - alpha) * kn.get(cid, 0.0) for cid in {*kn, *sn}
    }
    return [cid for cid, _ in sorted(combined.items(), key=lambda x: -x[1])]


async def evaluate(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    data = load(name, args.max_docs, args.max_queries)
    folder = workdir / name
    folder.mkdir()
    write_markdown(data["corpus"], folder)
    store = await SqliteStore.open(workdir / f"{name}.db")
    await store.migrate()
    db = store.db
    embedder = _embedder(args.embedder)
    settings = load_settings(db=str(workdir / f"{name}.db"))
    docs = (await build_runtime(settings, store, embedder=embedder)).documents
    await docs.add_root(folder)
    started = time.perf_counter()
    report = await docs.index()
    index_seconds = time.perf_counter() - started
    space = await store.spaces.active()
    if space is None:
        raise RuntimeError(f"{name}: indexing left no active embedding space")
    chunk_doc = {
        row[0]: Path(row[1]).stem
        for row in await db.fetchall(
            f"SELECT c.id, d.file_path FROM {space.chunks} AS c"
            " JOIN document_index AS d ON d.id = c.document_id"
        )
    }
    id_of = {markdown_stem(d["_id"]): d["_id"] for d in data["corpus"]}
    runs: dict[str, list[list[str]]] = defaultdict(list)
    search_ms: list[float] = []
    for query in data["queries"]:
        vector = await embedder.embed_query(query["text"])
        started = time.perf_counter()
        keyword, semantic = await db.read(_candidates, store, space, query["text"], vector)
        search_ms.append((time.perf_counter() - started) * 1000)
        variants = {
            "keyword": [cid for cid, _ in keyword],
            "semantic": [cid for cid, _ in semantic],
            "hybrid_rrf60": rrf([keyword, semantic]),
            "hybrid_rrf10": rrf([keyword, semantic], k=10),
            "hybrid_weighted_0.3": weighted(keyword, semantic, 0.3),
            "hybrid_weighted_0.5": weighted(keyword, semantic, 0.5),
            "hybrid_weighted_0.7": weighted(keyword, semantic, 0.7),
        }
        for label, chunk_ids in variants.items():
            ranked = list(dict.fromkeys(id_of[chunk_doc[c]] for c in chunk_ids if c in chunk_doc))
            runs[label].append(ranked)
    metrics = {}
    for label, ranked_lists in runs.items():
        judged = [data["qrels"][q["_id"]] for q in data["queries"]]
        metrics[label] = {
            "ndcg@10": round(
                float(np.mean([ndcg_at(r, j) for r, j in zip(ranked_lists, judged, strict=True)])),
                4,
            ),
            "recall@100": round(
                float(
                    np.mean([recall_at(r, j) for r, j in zip(ranked_lists, judged, strict=True)])
                ),
                4,
            ),
        }
    await embedder.close()
    await store.close()
    best_single = max(metrics["keyword"]["ndcg@10"], metrics["semantic"]["ndcg@10"])
    return {
        "documents": len(data["corpus"]),
        "queries": len(data["queries"]),
        "chunks": len(chunk_doc),
        "index_seconds": round(index_seconds, 1),
        "embed_seconds": round(report.work.embed_seconds, 1) if report.work else None,
        "search_ms_p50": round(float(np.median(search_ms)), 2),
        "metrics": metrics,
        "hybrid_beats_best_single_mode": metrics["hybrid_rrf60"]["ndcg@10"] > best_single,
    }


def _candidates(conn: Any, store: SqliteStore, space: Any, query: str, vector: Any) -> tuple:
    """The two ranked candidate lists the engine fuses, with a larger pool for recall@100."""
    terms = tuple(keyword_terms(query))
    keyword = _bm25(conn, space, terms, "1", [], POOL, store.search.term_counts) if terms else []
    codes = store.vector_cache.codes(conn, space)
    candidates = vector_index.coarse(codes, vector, max(vector_index.COARSE_CANDIDATES, POOL), None)
    semantic = vector_index.rerank(conn, space, vector, candidates, POOL)
    return keyword, semantic


def _embedder(name: str) -> Any:
    if name == "fake":
        from abathur_memory.embedders.fake import FakeEmbedder

        return FakeEmbedder(dim=256)
    from abathur_memory.embedders.embedded import EmbeddedEmbedder

    return EmbeddedEmbedder()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "benchmark": "retrieval",
        "date": dt.date.today().isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "embedder": args.embedder,
        "datasets": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.dataset:
            out["datasets"][name] = await evaluate(name, args, Path(tmp))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", choices=["cranfield", "nfcorpus", "vaswani"])
    parser.add_argument("--embedder", choices=["embedded", "fake"], default="embedded")
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="200 documents, 20 queries")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.dataset = args.dataset or ["cranfield"]
    if args.quick:
        args.max_docs, args.max_queries = 200, 20
    emit(asyncio.run(main_async(args)), args.out)


if __name__ == "__main__":
    main()
