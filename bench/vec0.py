"""Measure sqlite-vec's ``vec0`` tables against the project's vector path on the same vectors;
print one JSON object. The decision it informed (drop sqlite-vec) and the measured numbers are
in docs/storage.md ("sqlite-vec: measured, then dropped") and bench/results/vec0.json.

Not a test: run it by hand, e.g. ``python -m bench.vec0 [--n 100000,20000] [--out FILE]``
(``--n`` takes one size or several; ``--quick`` is a smoke run: 5,000 vectors, 20 queries, one
run; its numbers mean little). It needs the ``bench`` extra (sqlite-vec). Everything it
generates lives in a temporary directory.

Data: ``--n`` clustered 384-dim float32 unit vectors (bench.common's mixture: a shared
direction, 50 topics, n / 100 clusters, noise; rowids 1..n) and ``--queries`` held-out vectors
drawn near the same clusters. k = 10. Each approach gets its own database file (so its size
on disk is its own), written through ``connect`` (``driver.connect`` with sqlite-vec loaded)
in one transaction; the query connection opens the plain table's file with the others
ATTACHed.

Query paths (timed end to end, Python call to top-10 ids):

- ``project``: the engine's path: ``vector_index._load`` builds the ``Codes`` from the plain
  table, then ``coarse`` with ``candidates_for(codes, 10)`` candidates and ``rerank`` (float32
  BLOBs read with ``WHERE chunk_id IN (...)``); ``project_coarse_only`` is its first half;
- ``numpy_matmul`` / ``numpy_einsum``: exact brute force in memory (OpenBLAS, and numpy's own
  one-thread loop): the floor;
- ``vec0_float`` (L2, the order of cosine on unit vectors) and ``vec0_float_cosine``
  (``distance_metric=cosine``): ``WHERE embedding MATCH ? AND k = 10``;
- ``vec0_bit_rerank``: ``vec0(embedding bit[384])`` KNN for as many candidates as ``project``,
  then the project's ``rerank``; ``vec0_bit_k10``: the same KNN with k = 10, no re-rank;
  ``vec0_bit_aux_rerank``: ``+full blob`` returns the floats, re-ranked in numpy;
  ``vec0_bit_sql_rerank``: the re-rank in SQL with ``vec_distance_cosine``;
- ``project_coarse_sql_rerank``: the project's coarse pass, re-ranked in SQL;
- ``vec0_int8``: ``vec0(embedding int8[384])`` (one global scale, quantised in numpy), k = 10;
  ``vec0_int8_rerank``: k = 100, then ``rerank``;
- filtered to one of 10 roots: ``project_filtered`` (``coarse`` with ``allowed``) against
  ``vec0_float_partition`` (``root integer partition key``); recall within the root.

The paths run ``--runs`` times over the same queries (every other run reversed), interleaved
in blocks of ``--block`` queries with the order rotating, after a warm-up of 3 queries each;
recall@10 is of the first run's answers against numpy exact search. Also measured: encode +
insert time and file size of each table, the time ``vector_index._load`` takes, and the cost of
the extension: ``--opens`` opens of a migrated project database with ``sqlean.connect`` alone,
with ``sqlite_vec.load`` (also while another connection holds the library), and through
``driver.connect``, interleaved in blocks of 100; plus the first load and the import of
``sqlite_vec`` in fresh processes.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlean as sqlite
import sqlite_vec

from abathur_memory.core.spaces import EmbeddingIdentity, Space
from abathur_memory.store.sqlite import chunks as store
from abathur_memory.store.sqlite import driver, vector_index, vectors
from abathur_memory.store.sqlite import migrate as runner
from bench.common import (
    DIM,
    MIX,
    K,
    Mixture,
    einsum_scores,
    emit,
    exact_top,
    header,
    load_average,
    percentile,
    percentiles,
    profile,
    project_revision,
)

SEED = 20261124
WARMUP_QUERIES = 3
ROOTS = 10
INT8_RERANK_K = 100
OPEN_BLOCK = 100
# The space whose plain vector table (laid out as spaces.space_ddl makes it) the project's
# path reads: vector_index.rerank takes the table name and the dimension from it.
SPACE = Space(1, EmbeddingIdentity("fake", "bench-vec0", DIM, 512), "active", 1)
TABLE = SPACE.vectors


# -- helpers ------------------------------------------------------------------------------


def recall(found: Sequence[Sequence[int]], truth: Sequence[Sequence[int]]) -> dict[str, float]:
    per = [
        len(set(map(int, f)) & set(map(int, t))) / len(t) for f, t in zip(found, truth, strict=True)
    ]
    return {"mean": round(statistics.mean(per), 4), "min": round(min(per), 2)}


def size_mb(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return round(total / 2**20, 2)


def checkpoint(conn: driver.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def connect(path: str | Path) -> driver.Connection:
    """``driver.connect`` with sqlite-vec loaded (the driver itself no longer loads it)."""
    conn = driver.connect(path)
    try:
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
    except BaseException:
        conn.close()
        raise
    return conn


# -- building the tables ------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    name: str  # schema name when attached, and the file's stem
    ddl: str
    insert: str
    rows: Callable[[], Any]  # an iterable of parameter tuples (built inside the timing)
    what: str


def build(tmp: Path, table: Table) -> dict[str, Any]:
    path = tmp / f"{table.name}.db"
    conn = connect(path)
    try:
        conn.execute(table.ddl)
        gc.collect()
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(table.insert, table.rows())
        conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        checkpoint(conn)
    finally:
        conn.close()
    return {"what": table.what, "insert_s": round(seconds, 2), "size_mb": size_mb(path)}


def build_all(
    tmp: Path, matrix: np.ndarray, roots: np.ndarray, int8_scale: float
) -> tuple[dict[str, Any], list[str]]:
    n = len(matrix)
    out: dict[str, Any] = {}

    # The project's table: the indexer's own encoding (chunks.encoded), then the insert.
    gc.collect()
    started = time.perf_counter()
    encoded = [store.encoded(row) for row in matrix]
    encode_s = time.perf_counter() - started
    plain = Table(
        "plain",
        f"CREATE TABLE {TABLE} (chunk_id INTEGER PRIMARY KEY, embedding BLOB NOT NULL,"
        " code BLOB NOT NULL)",
        f"INSERT INTO {TABLE} (chunk_id, embedding, code) VALUES (?, ?, ?)",
        lambda: ((i + 1, e, c) for i, (e, c) in enumerate(encoded)),
        "plain table: chunk_id INTEGER PRIMARY KEY, float32 BLOB, 48-byte sign code",
    )
    out["project"] = build(tmp, plain)
    out["project"]["encode_s"] = round(encode_s, 2)
    out["project"]["total_s"] = round(encode_s + out["project"]["insert_s"], 2)
    floats = [e for e, _ in encoded]
    encoded.clear()

    q8 = np.clip(np.rint(matrix * int8_scale), -127, 127).astype(np.int8)
    tables = [
        Table(
            "vf",
            "CREATE VIRTUAL TABLE vf USING vec0(embedding float[384])",
            "INSERT INTO vf (rowid, embedding) VALUES (?, ?)",
            lambda: ((i + 1, floats[i]) for i in range(n)),
            "vec0(embedding float[384])",
        ),
        Table(
            "vb",
            "CREATE VIRTUAL TABLE vb USING vec0(embedding bit[384])",
            "INSERT INTO vb (rowid, embedding) VALUES (?, vec_quantize_binary(?))",
            lambda: ((i + 1, floats[i]) for i in range(n)),
            "vec0(embedding bit[384]) via vec_quantize_binary (the floats stay in the plain table)",
        ),
        Table(
            "vfc",
            "CREATE VIRTUAL TABLE vfc USING vec0(embedding float[384] distance_metric=cosine)",
            "INSERT INTO vfc (rowid, embedding) VALUES (?, ?)",
            lambda: ((i + 1, floats[i]) for i in range(n)),
            "vec0(embedding float[384] distance_metric=cosine)",
        ),
        Table(
            "vba",
            "CREATE VIRTUAL TABLE vba USING vec0(embedding bit[384], +full blob)",
            "INSERT INTO vba (rowid, embedding, full) VALUES (?, vec_quantize_binary(?), ?)",
            lambda: ((i + 1, floats[i], floats[i]) for i in range(n)),
            "vec0(embedding bit[384], +full blob): floats as an auxiliary column",
        ),
        Table(
            "vi8",
            "CREATE VIRTUAL TABLE vi8 USING vec0(embedding int8[384])",
            "INSERT INTO vi8 (rowid, embedding) VALUES (?, vec_int8(?))",
            lambda: ((i + 1, q8[i].tobytes()) for i in range(n)),
            f"vec0(embedding int8[384]), x * {int8_scale:.1f} rounded in numpy",
        ),
        Table(
            "vfp",
            "CREATE VIRTUAL TABLE vfp USING vec0(root integer partition key, embedding float[384])",
            "INSERT INTO vfp (rowid, root, embedding) VALUES (?, ?, ?)",
            lambda: ((i + 1, int(roots[i]), floats[i]) for i in range(n)),
            f"vec0(root integer partition key, embedding float[384]), {ROOTS} roots",
        ),
    ]
    for table in tables:
        out[table.name] = build(tmp, table)
    return out, [t.name for t in tables]


# -- the query paths ----------------------------------------------------------------------


def query_paths(
    conn: driver.Connection,
    codes: vector_index.Codes,
    matrix: np.ndarray,
    int8_scale: float,
    allowed_by_root: dict[int, np.ndarray],
) -> dict[str, Callable[[tuple[int, np.ndarray]], list[int]]]:
    space = SPACE
    candidates = vector_index.candidates_for(codes, K)

    def project(item: tuple[int, np.ndarray]) -> list[int]:
        q = item[1]
        ids = vector_index.coarse(codes, q, candidates, None)
        return [i for i, _ in vector_index.rerank(conn, space, q, ids, K)]

    def project_coarse_only(item: tuple[int, np.ndarray]) -> list[int]:
        return list(vector_index.coarse(codes, item[1], candidates, None)[:K])

    def numpy_matmul(item: tuple[int, np.ndarray]) -> list[int]:
        return list(exact_top(matrix, item[1]) + 1)

    def numpy_einsum(item: tuple[int, np.ndarray]) -> list[int]:
        return list(exact_top(matrix, item[1], product=einsum_scores) + 1)

    def knn(
        sql: str, transform: Callable[[np.ndarray], bytes] = lambda q: q.tobytes()
    ) -> Callable[[tuple[int, np.ndarray]], list[int]]:
        def run(item: tuple[int, np.ndarray]) -> list[int]:
            return [r[0] for r in conn.execute(sql, (transform(item[1]),))]

        return run

    def vec0_bit_rerank(item: tuple[int, np.ndarray]) -> list[int]:
        q = item[1]
        rows = conn.execute(
            "SELECT rowid FROM vb.vb WHERE embedding MATCH vec_quantize_binary(?) AND k = ?",
            (q.tobytes(), candidates),
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return [i for i, _ in vector_index.rerank(conn, space, q, ids, K)]

    def vec0_bit_aux_rerank(item: tuple[int, np.ndarray]) -> list[int]:
        q = item[1]
        rows = conn.execute(
            "SELECT rowid, full FROM vba.vba WHERE embedding MATCH vec_quantize_binary(?)"
            " AND k = ?",
            (q.tobytes(), candidates),
        ).fetchall()
        found = vectors.decode_many([r[1] for r in rows], DIM)
        order = np.argsort(-(found @ q))[:K]
        return [rows[i][0] for i in order]

    def vec0_bit_sql_rerank(item: tuple[int, np.ndarray]) -> list[int]:
        blob = item[1].tobytes()
        rows = conn.execute(
            "WITH coarse AS (SELECT rowid FROM vb.vb WHERE embedding MATCH"
            " vec_quantize_binary(:q) AND k = :c)"
            f" SELECT p.chunk_id FROM coarse JOIN {TABLE} AS p ON p.chunk_id = coarse.rowid"
            " ORDER BY vec_distance_cosine(p.embedding, :q) LIMIT :k",
            {"q": blob, "c": candidates, "k": K},
        )
        return [r[0] for r in rows]

    def project_coarse_sql_rerank(item: tuple[int, np.ndarray]) -> list[int]:
        q = item[1]
        ids = [int(i) for i in vector_index.coarse(codes, q, candidates, None)]
        marks = ",".join("?" for _ in ids)
        rows = conn.execute(
            f"SELECT chunk_id FROM {TABLE} WHERE chunk_id IN ({marks})"
            " ORDER BY vec_distance_cosine(embedding, ?) LIMIT ?",
            [*ids, q.tobytes(), K],
        )
        return [r[0] for r in rows]

    def int8_bytes(q: np.ndarray) -> bytes:
        return np.clip(np.rint(q * int8_scale), -127, 127).astype(np.int8).tobytes()

    def vec0_int8_rerank(item: tuple[int, np.ndarray]) -> list[int]:
        q = item[1]
        rows = conn.execute(
            "SELECT rowid FROM vi8.vi8 WHERE embedding MATCH vec_int8(?) AND k = ?",
            (int8_bytes(q), INT8_RERANK_K),
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return [i for i, _ in vector_index.rerank(conn, space, q, ids, K)]

    def project_filtered(item: tuple[int, np.ndarray]) -> list[int]:
        number, q = item
        ids = vector_index.coarse(codes, q, candidates, allowed_by_root[number % ROOTS])
        return [i for i, _ in vector_index.rerank(conn, space, q, ids, K)]

    def vec0_float_partition(item: tuple[int, np.ndarray]) -> list[int]:
        number, q = item
        rows = conn.execute(
            "SELECT rowid FROM vfp.vfp WHERE embedding MATCH ? AND k = ? AND root = ?",
            (q.tobytes(), K, number % ROOTS),
        )
        return [r[0] for r in rows]

    paths: dict[str, Callable[[tuple[int, np.ndarray]], list[int]]] = {
        "project": project,
        "project_coarse_only": project_coarse_only,
        "numpy_matmul": numpy_matmul,
        "numpy_einsum": numpy_einsum,
        "vec0_float": knn("SELECT rowid FROM vf.vf WHERE embedding MATCH ? AND k = 10"),
        "vec0_bit_rerank": vec0_bit_rerank,
        "vec0_bit_k10": knn(
            "SELECT rowid FROM vb.vb WHERE embedding MATCH vec_quantize_binary(?) AND k = 10"
        ),
        "vec0_bit_sql_rerank": vec0_bit_sql_rerank,
        "project_coarse_sql_rerank": project_coarse_sql_rerank,
        "vec0_float_cosine": knn("SELECT rowid FROM vfc.vfc WHERE embedding MATCH ? AND k = 10"),
        "vec0_bit_aux_rerank": vec0_bit_aux_rerank,
        "vec0_int8": knn(
            "SELECT rowid FROM vi8.vi8 WHERE embedding MATCH vec_int8(?) AND k = 10", int8_bytes
        ),
        "vec0_int8_rerank": vec0_int8_rerank,
        "project_filtered": project_filtered,
        "vec0_float_partition": vec0_float_partition,
    }
    return paths


FILTERED = ("project_filtered", "vec0_float_partition")


def run_queries(
    paths: dict[str, Callable], queries: np.ndarray, runs: int, block: int
) -> tuple[dict[str, list[float]], dict[str, list[list[float]]], dict[str, list[list[int]]]]:
    items = list(enumerate(queries))
    names = list(paths)
    samples: dict[str, list[float]] = {name: [] for name in names}
    per_run: dict[str, list[list[float]]] = {name: [] for name in names}
    found: dict[str, dict[int, list[int]]] = {name: {} for name in names}
    for name in names:  # warm-up
        for item in items[:WARMUP_QUERIES]:
            paths[name](item)
    for run in range(runs):
        order = items if run % 2 == 0 else items[::-1]
        this_run: dict[str, list[float]] = {name: [] for name in names}
        gc.collect()
        for number, first in enumerate(range(0, len(order), block)):
            chunk = order[first : first + block]
            turn = number % len(names)
            for name in names[turn:] + names[:turn]:
                fn, out = paths[name], this_run[name]
                for item in chunk:
                    started = time.perf_counter()
                    answer = fn(item)
                    out.append((time.perf_counter() - started) * 1000)
                    if run == 0:  # the answers used for recall
                        found[name][item[0]] = answer
        for name in names:
            samples[name] += this_run[name]
            per_run[name].append(this_run[name])
    ordered = {name: [answers[i] for i in range(len(items))] for name, answers in found.items()}
    return samples, per_run, ordered


# -- the extension's own cost -------------------------------------------------------------


def open_costs(path: Path, opens: int) -> dict[str, Any]:
    def bare() -> None:
        conn = sqlite.connect(str(path), isolation_level=None)
        conn.execute("SELECT 1").fetchone()
        conn.close()

    def with_vec() -> None:
        conn = sqlite.connect(str(path), isolation_level=None)
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        conn.execute("SELECT 1").fetchone()
        conn.close()

    def project_connect() -> None:
        driver.connect(path).close()

    kinds = {
        "sqlean_connect": bare,
        "sqlean_connect_plus_sqlite_vec_load": with_vec,
        # The same, while another connection of the process keeps sqlite-vec loaded (as the
        # project's pooled connections do): SQLite dlcloses an extension with the last
        # connection that loaded it, so without a holder every load is a fresh dlopen.
        "sqlean_connect_plus_sqlite_vec_load_library_held": with_vec,
        "driver_connect": project_connect,
    }
    held = {"sqlean_connect_plus_sqlite_vec_load_library_held"}
    for fn in kinds.values():
        for _ in range(50):
            fn()
    blocks: dict[str, list[float]] = {name: [] for name in kinds}
    names = list(kinds)
    gc.collect()
    for number in range(max(1, opens // OPEN_BLOCK)):
        turn = number % len(names)
        for name in names[turn:] + names[:turn]:
            fn = kinds[name]
            holder = None
            if name in held:
                holder = sqlite.connect(":memory:")
                holder.enable_load_extension(True)
                sqlite_vec.load(holder)
            started = time.perf_counter()
            for _ in range(OPEN_BLOCK):
                fn()
            blocks[name].append((time.perf_counter() - started) * 1e6 / OPEN_BLOCK)
            if holder is not None:
                holder.close()
    out: dict[str, Any] = {
        "what": f"open + SELECT 1 + close of a migrated project database, µs per open: median"
        f" (and p95) of blocks of {OPEN_BLOCK}, {opens} opens per kind, kinds interleaved. The file"
        " is in WAL mode and no other connection has it open, so every close also checkpoints"
        " and removes the -wal/-shm files (the same for every kind)",
    }
    for name, values in blocks.items():
        out[name] = {
            "median_us": round(statistics.median(values), 1),
            "p95_us": round(percentile(values, 0.95), 1),
        }
    out["sqlite_vec_load_us"] = round(
        out["sqlean_connect_plus_sqlite_vec_load"]["median_us"]
        - out["sqlean_connect"]["median_us"],
        1,
    )
    out["sqlite_vec_load_library_held_us"] = round(
        out["sqlean_connect_plus_sqlite_vec_load_library_held"]["median_us"]
        - out["sqlean_connect"]["median_us"],
        1,
    )
    out["first_load_in_fresh_process"] = first_load()
    return out


FIRST_LOAD_CHILD = r"""
import json, time
t0 = time.perf_counter()
import sqlean as sqlite
t1 = time.perf_counter()
import numpy.typing  # sqlite_vec imports it (and the stdlib sqlite3); the project has it anyway
ta = time.perf_counter()
import sqlite_vec
t2 = time.perf_counter()
conn = sqlite.connect(":memory:")
conn.enable_load_extension(True)
t3 = time.perf_counter()
sqlite_vec.load(conn)
t4 = time.perf_counter()
conn2 = sqlite.connect(":memory:")
conn2.enable_load_extension(True)
t5 = time.perf_counter()
sqlite_vec.load(conn2)
t6 = time.perf_counter()
print(json.dumps({"import_sqlean_ms": (t1 - t0) * 1e3, "import_numpy_typing_ms": (ta - t1) * 1e3,
                  "import_sqlite_vec_after_numpy_ms": (t2 - ta) * 1e3,
                  "first_load_ms": (t4 - t3) * 1e3, "second_load_ms": (t6 - t5) * 1e3}))
"""


def first_load(children: int = 7) -> dict[str, Any]:
    results = []
    for _ in range(children):
        done = subprocess.run(
            [sys.executable, "-c", FIRST_LOAD_CHILD], capture_output=True, text=True, check=True
        )
        results.append(json.loads(done.stdout))
    return {
        "what": f"median of {children} child processes",
        **{key: round(statistics.median(r[key] for r in results), 3) for key in results[0]},
    }


# -- main ---------------------------------------------------------------------------------


def measure(args: argparse.Namespace, n: int) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    clusters = max(10, n // 100)
    mixture = Mixture(rng, clusters, MIX)
    matrix, point_clusters = mixture.points(n)
    queries, query_clusters = mixture.queries(args.queries, point_clusters)
    roots = rng.integers(0, ROOTS, n)
    int8_scale = 127.0 / float(np.quantile(np.abs(matrix), 0.9999))
    data = {
        "vectors": n,
        "dim": DIM,
        "clusters": clusters,
        "mixture": MIX,
        "queries": args.queries,
        "k": K,
        "roots_for_filtering": ROOTS,
        "profile": profile(matrix, queries, point_clusters, query_clusters),
    }

    with tempfile.TemporaryDirectory(prefix="bench-vec0-") as name:
        tmp = Path(name)
        t = time.perf_counter()
        builds, attached = build_all(tmp, matrix, roots, int8_scale)
        build_s = time.perf_counter() - t

        conn = connect(tmp / "plain.db")
        try:
            for schema in attached:
                conn.execute(f"ATTACH DATABASE ? AS {schema}", (str(tmp / f"{schema}.db"),))
            loads = []
            for _ in range(3):
                started = time.perf_counter()
                codes = vector_index._load(conn, TABLE, "chunk_id", DIM, 1, after=0)
                loads.append((time.perf_counter() - started) * 1000)
            builds["project"]["codes_load_ms"] = round(statistics.median(loads), 1)
            builds["project"]["codes_in_memory_mb"] = round(
                (codes.words.nbytes + codes.ids.nbytes) / 2**20, 2
            )
            allowed = {r: np.flatnonzero(roots == r).astype(np.int64) + 1 for r in range(ROOTS)}
            paths = query_paths(conn, codes, matrix, int8_scale, allowed)
            t = time.perf_counter()
            samples, per_run, found = run_queries(paths, queries, args.runs, args.block)
            query_s = time.perf_counter() - t
        finally:
            conn.close()

        truth = [list(exact_top(matrix, q) + 1) for q in queries]
        truth_filtered = []
        for number, q in enumerate(queries):
            ids = allowed[number % ROOTS]
            truth_filtered.append(list(ids[exact_top(matrix[ids - 1], q)]))

    results: dict[str, Any] = {}
    for name in paths:
        results[name] = {
            **percentiles(samples[name], top=True),
            "per_run_p50_ms": [round(percentile(r, 0.5), 2) for r in per_run[name]],
            "recall_at_10": recall(found[name], truth_filtered if name in FILTERED else truth),
        }
    results["project_coarse_only"]["recall_at_10"] = None  # not ranked: only the candidates
    floor = min(results["numpy_matmul"]["p50_ms"], results["numpy_einsum"]["p50_ms"])
    for item in results.values():
        item["p50_over_numpy_floor"] = round(item["p50_ms"] / floor, 2)
    return {
        "data": data,
        "candidates": {
            "coarse": vector_index.candidates_for(codes, K),
            "int8_rerank_knn_k": INT8_RERANK_K,
            "rule": "vector_index.candidates_for(codes, 10), as the engine asks for",
        },
        "aggregate": f"p50/p95 over {args.runs} runs x {args.queries} queries, every path"
        f" interleaved in blocks of {args.block} queries (order rotating); per-run p50s kept",
        "query": results,
        "build": builds,
        "section_seconds": {
            "build": round(build_s, 1),
            "queries": round(query_s, 1),
        },
    }


def extension_cost(opens: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-vec0-opens-") as name:
        path = Path(name) / "project.db"
        conn = driver.connect(path)
        try:
            runner.migrate(conn)
        finally:
            conn.close()
        started = time.perf_counter()
        out = open_costs(path, opens)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[100_000],
        help="vectors; a comma-separated list measures each size in turn (100000)",
    )
    parser.add_argument("--queries", type=int, default=100, help="queries (100)")
    parser.add_argument("--runs", type=int, default=2, help="timed runs over the queries (2)")
    parser.add_argument("--block", type=int, default=10, help="queries per interleaved block")
    parser.add_argument("--opens", type=int, default=3000, help="connection opens per kind")
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, one run")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.queries, args.runs, args.opens = [5_000], 20, 1, 300
    if min(args.n) < 1000 or args.queries < 1:
        parser.error("--n must be at least 1000 and --queries at least 1")

    from abathur_memory import __version__

    started = time.perf_counter()
    load_start = load_average()
    versions_conn = connect(":memory:")
    try:
        versions = driver.extension_versions(versions_conn)
        versions["sqlite_vec"] = versions_conn.execute("SELECT vec_version()").fetchone()[0]
    finally:
        versions_conn.close()
    sizes = {}
    for n in args.n:
        sizes[str(n)] = measure(args, n)
        print(f"measured n={n}", file=sys.stderr, flush=True)
    cost = extension_cost(args.opens)
    out: dict[str, Any] = {
        **header(),
        "load_average_1_5_15": {"start": load_start, "end": load_average()},
        "versions": {"abathur_memory": __version__, "numpy": np.__version__, **versions},
        "revision": project_revision(),
        "command": "python -m bench.vec0 " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "sizes": sizes,
        "extension_cost": cost,
    }
    out["elapsed_s"] = round(time.perf_counter() - started, 1)
    emit(out, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
