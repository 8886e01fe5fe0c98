"""Which approximate nearest-neighbour library the SQLite vector path uses, and from what size;
print one JSON object.

Not a test: run it by hand, e.g. ``python -m bench.ann [--n 100000] [--queries 200]
[--threads 2] [--chromadb] [--out FILE]`` (``--quick``: 5,000 vectors, a smoke run whose
numbers mean little).

The vectors are bench.common's clustered mixture (384-dim float32 unit vectors, n / 100
clusters; queries held out, drawn near the same clusters), so the numbers are comparable with
bench/vec0.py and docs/benchmarks.md. k = 10; recall@10 is against numpy exact search.

Measured, per candidate index (inner product = cosine on unit vectors):

- ``faiss_ivf_f32``: faiss ``IndexIVFFlat`` with the engine's lists and training sample
  (store/sqlite/ann.py) wrapped in ``IndexIDMap2``, at several nprobe; with ``--only engine``
  it is the library's own build that the engine's is compared with, in the same run;
- ``faiss_hnsw_f32``: faiss ``IndexHNSWFlat`` (M = 32, efConstruction = 64) wrapped in
  ``IndexIDMap2``, at several efSearch;
- ``usearch_f32`` / ``usearch_i8``: usearch ``Index`` (connectivity 16, expansion_add 128) with
  float32 and int8 storage, at several expansion_search;

each with: build time (one ``add`` of every vector, ``--threads`` threads), the resident
memory the index added, its size saved to disk, the time to load it back, query p50/p95 (one
query at a time, as a search does) and recall@10. Filtered queries (one root in ten, 10% of the
vectors): faiss with an ``IDSelectorBatch`` inside the graph walk, usearch by over-fetching and
dropping (its Python API has no predicate). ``project`` is the code the engine runs without an
index at each size in ``--sizes``: the coarse pass over 1-bit codes (``vector_index.coarse``
with ``candidates_for``) and the exact re-rank of its candidates, here from an in-memory matrix
(the engine reads them from SQLite, a few ms more); ``ann_at_size`` is the chosen library at
the same sizes, for the threshold.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from abathur_memory.store.sqlite import ann_files, vector_index
from bench.common import MIX, K, Mixture, dist_version, emit, exact_top, percentiles, rss_mb

SEED = 20261207
ROOTS = 10


def timed(fn: Callable[[np.ndarray], list[int]], queries: np.ndarray) -> tuple[dict, list]:
    for q in queries[:3]:  # warm-up
        fn(q)
    samples, answers = [], []
    for q in queries:
        start = time.perf_counter()
        answers.append(fn(q))
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples), answers


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    hits = sum(len(set(f[:K]) & set(t[:K])) for f, t in zip(found, truth, strict=True))
    return round(hits / (K * len(truth)), 4)


def faiss_run(
    matrix: np.ndarray, queries: np.ndarray, truth: list, roots: np.ndarray, args: Any
) -> dict:
    faiss = ann_files.faiss_module()
    faiss.omp_set_num_threads(args.threads)
    ids = np.arange(1, len(matrix) + 1, dtype=np.int64)
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    inner = faiss.IndexHNSWFlat(matrix.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction = 64
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(matrix, ids)
    build_s = time.perf_counter() - start
    added = rss_mb() - before
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "i.faiss")
        faiss.write_index(index, path)
        size = Path(path).stat().st_size
        start = time.perf_counter()
        faiss.read_index(path)
        load_s = time.perf_counter() - start
    faiss.omp_set_num_threads(1)  # one query at a time, as a search does
    out: dict[str, Any] = {
        "build_s": round(build_s, 2),
        "rss_added_mb": round(added, 1),
        "file_mb": round(size / 1e6, 1),
        "load_s": round(load_s, 3),
        "by_ef": {},
    }
    for ef in (32, 64, 128):

        def query(q: np.ndarray, ef: int = ef) -> list[int]:
            params = faiss.SearchParametersHNSW(efSearch=ef)
            _, found = index.search(q[None, :], K, params=params)
            return [int(i) for i in found[0]]

        stats, answers = timed(query, queries)
        out["by_ef"][ef] = {**stats, "recall_at_10": recall(answers, truth)}
    # filtered: one root in ten, the selector inside the graph walk
    root_ids = ids[roots == 0]
    selector = faiss.IDSelectorBatch(root_ids)
    filtered_truth = [[int(root_ids[i]) for i in exact_top(matrix[roots == 0], q)] for q in queries]
    for ef in (64, 128):

        def fquery(q: np.ndarray, ef: int = ef) -> list[int]:
            params = faiss.SearchParametersHNSW(efSearch=ef, sel=selector)
            _, found = index.search(q[None, :], K, params=params)
            return [int(i) for i in found[0] if i >= 0]

        stats, answers = timed(fquery, queries)
        out[f"filtered_10pct_ef{ef}"] = {**stats, "recall_at_10": recall(answers, filtered_truth)}
    return out


def faiss_ivf_run(
    matrix: np.ndarray,
    queries: np.ndarray,
    truth: list,
    roots: np.ndarray,
    args: Any,
    probes: tuple[int, ...] = (8, 16, 32, 64),
) -> dict:
    """faiss's own IVF build and search on the in-memory matrix, with the engine's number of
    lists and training sample (store/sqlite/ann.py): the floor the engine's build is held to."""
    from abathur_memory.store.sqlite import ann

    faiss = ann_files.faiss_module()
    faiss.omp_set_num_threads(args.threads)
    ids = np.arange(1, len(matrix) + 1, dtype=np.int64)
    nlist = ann.lists_for(len(matrix))
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    quantizer = faiss.IndexFlatIP(matrix.shape[1])
    inner = faiss.IndexIVFFlat(quantizer, matrix.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(len(matrix))
    sample = rng.choice(
        len(matrix), size=min(len(matrix), nlist * ann.TRAIN_PER_LIST), replace=False
    )
    inner.train(matrix[np.sort(sample)])
    train_s = time.perf_counter() - start
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(matrix, ids)
    build_s = time.perf_counter() - start
    added = rss_mb() - before
    faiss.omp_set_num_threads(1)  # one query at a time, as a search does
    out: dict[str, Any] = {
        "nlist": nlist,
        "train_s": round(train_s, 2),
        "build_s": round(build_s, 2),
        "rss_added_mb": round(added, 1),
        "by_nprobe": {},
    }
    for nprobe in probes:

        def query(q: np.ndarray, nprobe: int = nprobe) -> list[int]:
            _, found = index.search(q[None, :], K, params=faiss.SearchParametersIVF(nprobe=nprobe))
            return [int(i) for i in found[0]]

        stats, answers = timed(query, queries)
        out["by_nprobe"][nprobe] = {**stats, "recall_at_10": recall(answers, truth)}
    return out


def chromadb_run(matrix: np.ndarray, queries: np.ndarray, truth: list) -> dict:
    """chromadb (HNSW, cosine, on disk, its defaults) on the same vectors: the peer the
    engine's semantic step is compared with (bench/indexing.py builds it the same way)."""
    from bench.indexing import build_chroma

    ids = np.arange(1, len(matrix) + 1, dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        built = build_chroma(Path(tmp), matrix, ids)
        collection = built.pop("collection", None)
        if collection is None:
            return built

        def query(q: np.ndarray) -> list[int]:
            found = collection.query(query_embeddings=q[None, :], n_results=K, include=[])
            return [int(i) for i in found["ids"][0]]

        stats, answers = timed(query, queries)
        return {**built, "query": {**stats, "recall_at_10": recall(answers, truth)}}


def usearch_run(
    matrix: np.ndarray,
    queries: np.ndarray,
    truth: list,
    roots: np.ndarray,
    args: Any,
    dtype: str,
) -> dict:
    from usearch.index import Index

    ids = np.arange(1, len(matrix) + 1, dtype=np.uint64)
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    index = Index(
        ndim=matrix.shape[1], metric="ip", dtype=dtype, connectivity=16, expansion_add=128
    )
    index.add(ids, matrix, threads=args.threads)
    build_s = time.perf_counter() - start
    added = rss_mb() - before
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "i.usearch")
        index.save(path)
        size = Path(path).stat().st_size
        start = time.perf_counter()
        Index.restore(path)
        load_s = time.perf_counter() - start
    out: dict[str, Any] = {
        "build_s": round(build_s, 2),
        "rss_added_mb": round(added, 1),
        "file_mb": round(size / 1e6, 1),
        "load_s": round(load_s, 3),
        "by_ef": {},
    }
    for ef in (32, 64, 128):
        index.expansion_search = ef

        def query(q: np.ndarray) -> list[int]:
            return [int(i) for i in index.search(q, K, threads=1).keys]

        stats, answers = timed(query, queries)
        out["by_ef"][ef] = {**stats, "recall_at_10": recall(answers, truth)}
    index.expansion_search = 128
    allowed = set(int(i) for i in ids[roots == 0])
    filtered_truth = [
        [int(ids[roots == 0][i]) for i in exact_top(matrix[roots == 0], q)] for q in queries
    ]

    def fquery(q: np.ndarray) -> list[int]:  # over-fetch 10x (one root in ten), then drop
        keys = index.search(q, K * ROOTS * 2, threads=1).keys
        return [int(i) for i in keys if int(i) in allowed][:K]

    stats, answers = timed(fquery, queries)
    out["filtered_10pct_overfetch20x"] = {**stats, "recall_at_10": recall(answers, filtered_truth)}
    return out


def project_path(matrix: np.ndarray, queries: np.ndarray) -> tuple[dict, list]:
    ids = np.arange(1, len(matrix) + 1, dtype=np.int64)
    codes = vector_index.Codes(
        0,
        ids,
        np.stack([vector_index.query_code(v) for v in matrix]),
        int(ids[-1]),
    )
    pool = vector_index.candidates_for(codes, K)

    def query(q: np.ndarray) -> list[int]:
        found = vector_index.coarse(codes, q, pool, None)
        scores = matrix[found - 1] @ q
        return [int(found[i]) for i in np.argsort(-scores)[:K]]

    return timed(query, queries)


Search = Callable[[np.ndarray, "np.ndarray | None"], list[int]]


def within(search: Search, allowed: np.ndarray | None) -> Callable[[np.ndarray], list[int]]:
    """``search`` with its allowed ids bound (None: every vector)."""
    return lambda q: search(q, allowed)


def engine_run(matrix: np.ndarray, queries: np.ndarray, truth: list, roots: np.ndarray) -> dict:
    """The engine's own vector step on a SQLite file holding the vectors: the exact path
    (coarse pass + re-rank from the table) against the approximate index (graph + the same
    re-rank), unfiltered and with one root in ten allowed; the index's build (sync), its
    memory, its file and a fresh process's load-and-verify."""
    from abathur_memory.core.spaces import EmbeddingIdentity
    from abathur_memory.store.sqlite import ann, chunks, driver, spaces
    from abathur_memory.store.sqlite import migrate as runner

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "engine.db"
        conn = driver.connect(path)
        runner.migrate(conn)
        conn.execute("PRAGMA foreign_keys = OFF")  # chunk rows are not needed for vectors
        conn.execute("BEGIN IMMEDIATE")
        identity = EmbeddingIdentity("fake", "bench", matrix.shape[1], 512)
        written = spaces.space_for(conn, identity)
        conn.executemany(
            f"INSERT INTO {written.vectors} (chunk_id, embedding, code) VALUES (?, ?, ?)",
            ((i + 1, *chunks.encoded(v)) for i, v in enumerate(matrix)),
        )
        conn.execute("COMMIT")
        space = spaces.active_space(conn)
        assert space is not None
        cache = vector_index.VectorIndex()
        graphs = ann.AnnIndexes(path, ann.AnnSettings(min_vectors=1))
        gc.collect()
        before = rss_mb()
        start = time.perf_counter()
        graphs.sync(space.id, space.vectors)
        out["build_s"] = round(time.perf_counter() - start, 2)
        out["rss_added_mb"] = round(rss_mb() - before, 1)
        saved = ann_files.path_for(path, space.vectors)
        out["file_mb"] = round(saved.stat().st_size / 1e6, 1)
        fresh = ann.AnnIndexes(path, ann.AnnSettings(min_vectors=1))
        start = time.perf_counter()
        out["reopen"] = fresh.sync(space.id, space.vectors)
        out["load_and_verify_s"] = round(time.perf_counter() - start, 3)
        ids_of_root = np.arange(1, len(matrix) + 1, dtype=np.int64)[roots == 0]

        def exact(q: np.ndarray, allowed: np.ndarray | None = None) -> list[int]:
            codes = cache.codes(conn, space)
            found = vector_index.coarse(codes, q, vector_index.candidates_for(codes, 100), allowed)
            return [i for i, _ in vector_index.rerank(conn, space, q, found, K)]

        def approximate_ids(q: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
            found, note = graphs.candidates(
                conn, lambda: cache.codes(conn, space), space, space.vectors, q, 100, allowed, K
            )
            assert note == ann.APPROXIMATE, note
            return found

        def approximate(q: np.ndarray, allowed: np.ndarray | None = None) -> list[int]:
            found = approximate_ids(q, allowed)
            return [i for i, _ in vector_index.rerank(conn, space, q, found, K)]

        filtered_truth = [
            [int(ids_of_root[i]) for i in exact_top(matrix[roots == 0], q)] for q in queries
        ]
        conn.execute("BEGIN")  # a read snapshot, as a search has
        for name, fn in (("exact_path", exact), ("approximate_path", approximate)):
            stats, answers = timed(within(fn, None), queries)
            out[name] = {**stats, "recall_at_10": recall(answers, truth)}
            stats, answers = timed(within(fn, ids_of_root), queries)
            out[f"{name}_filtered_10pct"] = {
                **stats,
                "recall_at_10": recall(answers, filtered_truth),
            }

        # where the approximate path's time goes: the graph's candidates alone, without the
        # exact re-rank's reads of their vectors from the table
        def candidates_only(q: np.ndarray) -> list[int]:
            return [int(i) for i in approximate_ids(q)]

        out["approximate_candidates_only"] = timed(candidates_only, queries)[0]
        graph = graphs._graphs.get((space.id, space.vectors))
        out["nlist"] = graph.nlist if graph is not None else None
        out["nprobe"] = graph.nprobe if graph is not None else None
        conn.execute("COMMIT")
        graphs.close()
        fresh.close()
        conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="2000,5000,10000,20000,50000,100000")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only", choices=("libraries", "engine"), help="run one part (default: both)"
    )
    parser.add_argument(
        "--chromadb",
        action="store_true",
        help="with the engine part: chromadb on the same vectors (pip install chromadb)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries, args.sizes = 5000, 20, "1000,5000"
    rng = np.random.default_rng(SEED)
    mixture = Mixture(rng, max(10, args.n // 100), MIX)
    matrix, clusters = mixture.points(args.n)
    queries, _ = mixture.queries(args.queries, clusters)
    roots = rng.integers(0, ROOTS, args.n)
    truth = [[int(i) + 1 for i in exact_top(matrix, q)] for q in queries]
    result: dict[str, Any] = {
        "n": args.n,
        "dim": matrix.shape[1],
        "queries": args.queries,
        "build_threads": args.threads,
        "vectors_mb": round(matrix.nbytes / 1e6, 1),
        "python": sys.version.split()[0],
    }
    faiss = ann_files.faiss_module()
    # usearch is imported by the libraries part only: the engine part runs without it
    result["versions"] = {"faiss": faiss.__version__, "usearch": dist_version("usearch")}
    if args.only != "libraries":
        result["engine"] = engine_run(matrix, queries, truth, roots)
        # the library's own build of the same index on the same vectors, in this run
        library = faiss_ivf_run(matrix, queries, truth, roots, args)
        result["faiss_ivf_f32"] = library
        result["engine_build_over_library"] = round(
            result["engine"]["build_s"] / library["build_s"], 2
        )
        if args.chromadb:
            result["chromadb"] = chromadb_run(matrix, queries, truth)
    if args.only == "engine":
        emit(result, args.out)
        return
    result["faiss_hnsw_f32"] = faiss_run(matrix, queries, truth, roots, args)
    result["usearch_f32"] = usearch_run(matrix, queries, truth, roots, args, "f32")
    result["usearch_i8"] = usearch_run(matrix, queries, truth, roots, args, "i8")
    by_size: dict[str, Any] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        if size > args.n:
            continue
        sub = matrix[:size]
        sub_truth = [[int(i) + 1 for i in exact_top(sub, q)] for q in queries]
        stats, answers = project_path(sub, queries)
        entry: dict[str, Any] = {"project": {**stats, "recall_at_10": recall(answers, sub_truth)}}
        ivf = faiss_ivf_run(sub, queries, sub_truth, roots[:size], args, probes=(8, 16, 32))
        entry["faiss_ivf"] = {"build_s": ivf["build_s"], **ivf["by_nprobe"]}
        by_size[str(size)] = entry
    result["by_size"] = by_size
    emit(result, args.out)


if __name__ == "__main__":
    main()
