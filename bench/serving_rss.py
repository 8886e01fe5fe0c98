"""The memory of a process that serves searches on an existing SQLite index: its resident
set after opening the store and the runtime, after its approximate index is ready, and after
answering hybrid searches; print one JSON object.

    python -m bench.serving_rss DB [--queries 40]

bench/two_backends.py runs it in a child process on its built index, so that nothing of the
build (the generated vectors, the freed heap of the writes) is counted: the figure is what a
server holds to answer searches. The embedder is bench.common's QueryVectorEmbedder (random
unit query vectors), so no model is loaded; the embedded model adds its own weights.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from typing import Any

import numpy as np

from bench.common import QueryVectorEmbedder, corpus_queries, emit, rss_mb, synthetic_identity
from bench.two_backends import open_search

K = 10


def peak_rss_mb() -> float:
    """The largest resident set this process had (Linux: VmHWM)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def serve(db: str, queries: int) -> dict[str, Any]:
    rng = np.random.default_rng(5)
    texts = corpus_queries()
    embedder = QueryVectorEmbedder(synthetic_identity())
    started_mb = rss_mb()
    store, docs = await open_search(db, embedder)
    try:
        opened_mb = rss_mb()

        def next_vector() -> np.ndarray:
            vector = rng.standard_normal(synthetic_identity().dim).astype(np.float32)
            return vector / np.linalg.norm(vector)

        embedder.vector = next_vector()
        await docs.search(None, texts[0], K, "hybrid")
        while not store.ann.idle():  # loaded from its saved file, or rebuilt if stale
            await asyncio.sleep(0.5)
        ready_mb = rss_mb()
        paths = set()
        for _ in range(queries):
            embedder.vector = next_vector()
            result = await docs.search(None, texts[int(rng.integers(len(texts)))], K, "hybrid")
            paths.add(result.vector_search.split(":")[0] if result.vector_search else None)
        gc.collect()
        return {
            "interpreter_and_imports_mb": started_mb,
            "after_open_mb": opened_mb,
            "index_ready_mb": ready_mb,
            "serving_mb": rss_mb(),
            "peak_mb": peak_rss_mb(),
            "vector_paths": sorted(str(p) for p in paths),
            "queries": queries,
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db")
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args()
    emit({"benchmark": "serving_rss", **asyncio.run(serve(args.db, args.queries))})


if __name__ == "__main__":
    main()
