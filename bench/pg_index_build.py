"""How long pgvector takes to build the HNSW index migrate builds, under the old fixed 512 MB
of maintenance_work_mem and under the memory migrate now sizes for the graph
(store/postgres/copy_endpoint.py: hnsw_build_memory_mb); prints one JSON object.

    python -m bench.pg_index_build [--n 300000] [--out FILE]

``--n`` clustered 384-dimensional unit vectors (bench.common's mixture) are copied into a
table of a throwaway server; the index (cosine, m = 16, ef_construction = 64, as
space_tables.hnsw) is built once under each setting, on the same table, the order
alternating over ``--repeat`` rounds. A size whose graph outgrows 512 MB (about 230,000
vectors of 384 dimensions) shows the difference; under it the two settings are the same.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import MIX, Mixture, emit, header, postgres_server

OLD_MB = 512


def main() -> None:
    import psycopg
    from pgvector.psycopg import register_vector

    from abathur_memory.store.postgres.copy_endpoint import hnsw_build_memory_mb

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(20261207)
    matrix, _ = Mixture(rng, max(10, args.n // 100), MIX).points(args.n)
    result: dict[str, Any] = {**header(), "n": args.n, "dim": matrix.shape[1], "builds": []}
    with postgres_server() as uri, psycopg.connect(uri, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("CREATE TABLE v (id bigint PRIMARY KEY, embedding vector(384))")
        started = time.perf_counter()
        with conn.cursor().copy("COPY v (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for number, row in enumerate(matrix):
                copy.write_row((number + 1, row))
        result["copy_s"] = round(time.perf_counter() - started, 1)
        server = conn.execute(
            "SELECT setting::bigint * 1024 / 1048576 FROM pg_settings"
            " WHERE name = 'maintenance_work_mem'"
        ).fetchone()
        sized = hnsw_build_memory_mb(args.n, matrix.shape[1], int(server[0]) if server else 0)
        result["sized_mb"] = sized
        for round_ in range(args.repeat):
            order = (OLD_MB, sized) if round_ % 2 == 0 else (sized, OLD_MB)
            for memory in order:
                with conn.transaction():
                    conn.execute("SET LOCAL statement_timeout = 0")
                    conn.execute(f"SET LOCAL maintenance_work_mem = '{memory}MB'".encode())
                    started = time.perf_counter()
                    conn.execute(
                        "CREATE INDEX v_embedding ON v USING hnsw (embedding vector_cosine_ops)"
                        " WITH (m = 16, ef_construction = 64)"
                    )
                    seconds = time.perf_counter() - started
                conn.execute("DROP INDEX v_embedding")
                result["builds"].append(
                    {"maintenance_work_mem_mb": memory, "seconds": round(seconds, 1)}
                )
    emit(result, args.out)


if __name__ == "__main__":
    main()
