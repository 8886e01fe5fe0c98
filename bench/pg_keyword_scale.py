"""PostgreSQL keyword search at a million chunks: the plan's rows to rank, with and without
the rule for queries whose every term is common (store/postgres/keywords.py); print one
JSON object.

Not a test: run it by hand, ``python -m bench.pg_keyword_scale [--chunks 1000000]
[--queries 150] [--out FILE]`` (about 6 minutes at 1M, most of it building the table).

A throwaway PostgreSQL (bench.common's) holds one bare table of ``--chunks`` rows: the
100-word chunks bench/two_backends.py indexes (real text from ../shared/data, cycled), their
english tsvector under a GIN index, analyzed. Each of the first ``--queries`` BEIR query
texts is planned by ``keywords.plan`` and its candidate query run the way the store runs it
(the score of every term, the plan's scan, again over ``every`` when the scan found fewer
than 10 rows), twice in turn: ``with_rule`` (the code as it is) and ``without_rule`` (the
rule off: COMMON_ROWS set so high that no term counts as common, which is the plan before
it except that its fallback scan keeps every term). The time is the plan plus the query,
in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from abathur_memory.search.query import keyword_terms
from abathur_memory.store.postgres import keywords
from bench.common import chunk_texts, corpus_docs, corpus_queries, emit, header, postgres_server

TABLE = "bench_chunks"


def build(url: str, chunks: int) -> float:
    import psycopg

    words = " ".join(f"{d.get('title', '')} {d['text']}" for d in corpus_docs()).split()
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, text text, tsv tsvector)")
        with conn.cursor().copy(f"COPY {TABLE} (text) FROM STDIN") as copy:
            for text in chunk_texts(words, chunks):
                copy.write_row((text,))
        conn.execute(f"UPDATE {TABLE} SET tsv = to_tsvector('english', text)")
        conn.execute(f"CREATE INDEX ON {TABLE} USING gin (tsv)")
        conn.execute(f"ANALYZE {TABLE}")
    return time.perf_counter() - started


async def measure(url: str, queries: list[str]) -> dict[str, Any]:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await conn.execute("SET statement_timeout = 300000")
    times: dict[str, list[float]] = {"with_rule": [], "without_rule": []}
    kept = keywords.COMMON_ROWS
    try:
        for text in queries:
            terms = keyword_terms(text)
            for name in times:
                keywords.COMMON_ROWS = kept if name == "with_rule" else 10**12
                started = time.perf_counter()
                planned = await keywords.plan(conn, TABLE, terms, {})
                if planned is None:
                    continue
                score, params = planned.score_sql("c.tsv")
                sql = (
                    f"SELECT c.id, {score} AS score FROM {TABLE} AS c,"
                    " websearch_to_tsquery('english', %s) AS r"
                    " WHERE c.tsv @@ r ORDER BY score DESC, c.id LIMIT 50"
                )
                found = await (await conn.execute(sql, [*params, planned.scan])).fetchall()
                if len(found) < 10 and planned.pruned:
                    await (await conn.execute(sql, [*params, planned.every])).fetchall()
                times[name].append((time.perf_counter() - started) * 1000)
    finally:
        keywords.COMMON_ROWS = kept
        await conn.close()
    out: dict[str, Any] = {}
    for name, values in times.items():
        ordered = sorted(values)
        out[name] = {
            "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
            "max_ms": round(ordered[-1], 1),
            "over_1s": sum(v > 1000 for v in ordered),
            "queries": len(ordered),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with postgres_server() as url:
        seconds = build(url, args.chunks)
        measured = asyncio.run(measure(url, corpus_queries()[: args.queries]))
    emit(
        {
            "benchmark": "pg_keyword_scale",
            **header(),
            "chunks": args.chunks,
            "build_s": round(seconds, 1),
            **measured,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
