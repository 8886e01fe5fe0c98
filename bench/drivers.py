"""Compare SQLite driver candidates on this machine; print one JSON object.

Not a test: run it by hand, e.g. ``python -m bench.drivers [--rows 100000] [--out FILE]``.

Candidates: ``sqlean`` (sqlean.py, the driver the project uses), ``pysqlite3``
(pysqlite3-binary), ``apsw`` (not DB-API) and the stdlib ``sqlite3`` (reference only).
A candidate that cannot be imported is reported as ``{"available": false, "reason": ...}``.

For every candidate, on a fresh temporary database with the seed PRAGMAs and the schema made
by the project's own migrations:

1. batched insert: ``--rows`` rows into ``memory_entries`` with one ``executemany`` in one
   transaction (rows/s);
2. get-by-(namespace, key): ``hot_queries.MEMORY_GET_LATEST`` on random existing keys,
   20000 timed lookups after a warm-up (p50/p95/p99 in microseconds);
3. single-row commits: 2000 × ``BEGIN IMMEDIATE`` / ``INSERT`` / ``COMMIT`` (commits/s).

Then, for sqlean only, the async floor (a bare ``aiosqlite.Connection`` around
``storage.driver.connect``) and the project's ``storage.database.Database`` doing the same get
and single-row writes, so the project overhead over the floor is visible. These run on one
file, interleaved in blocks of calls, so that both see the same noise of a shared host.

Every timed section runs three times (drivers round-robin) and the median of the three runs
is reported; the three raw values are kept under ``runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import importlib.metadata
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import emit, header, interleaved, percentiles_us, value_of, warm

RUNS = 3
LOOKUPS = 20_000
WARMUP_LOOKUPS = 2_000
COMMITS = 2_000
WARMUP_COMMITS = 100
READ_BLOCK = 500
WRITE_BLOCK = 100
SEED = 20261123

INSERT_SQL = (
    "INSERT INTO memory_entries (namespace, key, value, memory_type) VALUES (?, ?, ?, 'semantic')"
)
INSERT_NAMED_SQL = (
    "INSERT INTO memory_entries (namespace, key, value, memory_type) "
    "VALUES (:namespace, :key, :value, 'semantic')"
)

SEED_PRAGMAS = (
    "PRAGMA busy_timeout = 5000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA wal_autocheckpoint = 1000",
)


# -- data ---------------------------------------------------------------------------------


def namespace_of(i: int) -> str:
    return f"user:u{i % 100}:ns{i % 1000}"


def make_rows(n: int) -> list[tuple[str, str, str]]:
    return [(namespace_of(i), f"k{i}", value_of(i)) for i in range(n)]


def lookup_params(n: int, count: int, rng: random.Random) -> list[dict[str, str]]:
    picks = (rng.randrange(n) for _ in range(count))
    return [{"namespace": namespace_of(i), "key": f"k{i}"} for i in picks]


# -- statistics ---------------------------------------------------------------------------


def median_of_runs(runs: list[dict[str, float]]) -> dict[str, Any]:
    """{metric: median over runs} plus the raw per-run values."""
    out: dict[str, Any] = {}
    for metric in runs[0]:
        out[metric] = round(statistics.median(run[metric] for run in runs), 2)
    out["runs"] = runs
    return out


# -- candidates ---------------------------------------------------------------------------


class Candidate:
    """A driver under test. Every one of them offers ``conn.execute(sql, params)`` returning a
    cursor with ``fetchone``/``fetchall`` and ``conn.executemany``; only opening a connection
    and loading an extension differ. DB-API connections are opened in autocommit mode
    (``isolation_level=None``) so every driver runs exactly the same explicit transactions."""

    name: str
    distribution: str | None
    dbapi = True

    def __init__(self, name: str, module: str, distribution: str | None) -> None:
        self.name = name
        self.module_name = module
        self.distribution = distribution
        self.module: Any = None

    def load(self) -> None:
        self.module = importlib.import_module(self.module_name)

    def package_version(self) -> str | None:
        if self.distribution is None:
            return None
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def connect(self, path: str) -> Any:
        return self.module.connect(path, isolation_level=None, check_same_thread=False)

    def load_vec(self, conn: Any) -> None:
        import sqlite_vec

        if not hasattr(conn, "enable_load_extension"):
            raise RuntimeError("this build has no enable_load_extension (extensions disabled)")
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)

    def close(self, conn: Any) -> None:
        conn.close()


class Apsw(Candidate):
    dbapi = False

    def connect(self, path: str) -> Any:
        return self.module.Connection(path)

    def load_vec(self, conn: Any) -> None:
        import sqlite_vec

        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec.loadable_path())
        conn.enable_load_extension(False)


CANDIDATES: list[Candidate] = [
    Candidate("sqlean", "sqlean", "sqlean.py"),
    Candidate("pysqlite3", "pysqlite3.dbapi2", "pysqlite3-binary"),
    Apsw("apsw", "apsw", "apsw"),
    Candidate("sqlite3", "sqlite3", None),
]


def probe(candidate: Candidate) -> dict[str, Any]:
    """Versions and capabilities, on an in-memory database."""
    conn = candidate.connect(":memory:")
    try:
        info: dict[str, Any] = {
            "available": True,
            "package_version": candidate.package_version(),
            "dbapi": candidate.dbapi,
            "sqlite_version": conn.execute("SELECT sqlite_version()").fetchone()[0],
        }
        try:
            candidate.load_vec(conn)
            info["sqlite_vec"] = conn.execute("SELECT vec_version()").fetchone()[0]
        except Exception as exc:
            info["sqlite_vec"] = False
            info["sqlite_vec_error"] = f"{type(exc).__name__}: {exc}"
        if info["sqlite_vec"]:
            info["vec_knn_with_limit"] = _knn_with_limit(conn)
        info["fts5"] = _works(conn, "CREATE VIRTUAL TABLE temp.fts_probe USING fts5(body)")
        info["jsonb"] = _works(conn, "SELECT jsonb('{}')")
        return info
    finally:
        candidate.close(conn)


def _works(conn: Any, sql: str) -> bool:
    try:
        conn.execute(sql).fetchall()
    except Exception:
        return False
    return True


def _knn_with_limit(conn: Any) -> bool:
    """sqlite-vec KNN written with LIMIT (instead of `k = ?`) needs SQLite 3.41."""
    import struct

    try:
        conn.execute("CREATE VIRTUAL TABLE temp.vec_probe USING vec0(embedding float[2])")
        for rowid, vec in enumerate(((0.0, 0.0), (1.0, 1.0), (2.0, 2.0)), start=1):
            conn.execute(
                "INSERT INTO temp.vec_probe (rowid, embedding) VALUES (?, ?)",
                (rowid, struct.pack("2f", *vec)),
            )
        rows = conn.execute(
            "SELECT rowid FROM temp.vec_probe WHERE embedding MATCH ? ORDER BY distance LIMIT 2",
            (struct.pack("2f", 0.9, 0.9),),
        ).fetchall()
    except Exception:
        return False
    return [row[0] for row in rows] == [2, 1]


# -- synchronous workload -------------------------------------------------------------------


def prepare(candidate: Candidate, path: str) -> Any:
    from abathur_memory.store.sqlite import migrate as runner

    conn = candidate.connect(path)
    for pragma in SEED_PRAGMAS:
        conn.execute(pragma).fetchall()
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() != "wal":
        raise RuntimeError(f"{candidate.name}: journal_mode is {mode}, not wal")
    for migration in runner.load_migrations():
        for statement in migration.statements():
            conn.execute(statement).fetchall()
    return conn


def bench_insert(conn: Any, rows: list[tuple[str, str, str]]) -> float:
    gc.collect()
    start = time.perf_counter_ns()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT_SQL, rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter_ns() - start
    count = conn.execute("SELECT count(*) FROM memory_entries WHERE key LIKE 'k%'").fetchone()[0]
    if count != len(rows):
        raise RuntimeError(f"inserted {count} rows, expected {len(rows)}")
    return len(rows) / (elapsed / 1e9)


def bench_get(conn: Any, sql: str, warmup: list[dict], timed: list[dict]) -> dict[str, float]:
    for params in warmup:
        conn.execute(sql, params).fetchone()
    samples = [0] * len(timed)
    clock = time.perf_counter_ns
    gc.collect()
    for index, params in enumerate(timed):
        start = clock()
        row = conn.execute(sql, params).fetchone()
        samples[index] = clock() - start
        if row is None:
            raise RuntimeError(f"no row for {params}")
    return percentiles_us(samples)


def bench_commits(conn: Any, tag: str) -> float:
    def one(j: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT_SQL, (namespace_of(j), f"{tag}{j}", value_of(j)))
        conn.execute("COMMIT")

    for j in range(WARMUP_COMMITS):
        one(-1 - j)
    gc.collect()
    start = time.perf_counter_ns()
    for j in range(COMMITS):
        one(j)
    elapsed = time.perf_counter_ns() - start
    return COMMITS / (elapsed / 1e9)


def run_sync(candidate: Candidate, rows: list, warmup: list, timed: list, run: int) -> dict:
    from abathur_memory.store.sqlite import queries as hot_queries

    with tempfile.TemporaryDirectory(prefix=f"bench-{candidate.name}-") as tmp:
        conn = prepare(candidate, str(Path(tmp) / "bench.db"))
        try:
            result: dict[str, float] = {"insert_rows_per_s": round(bench_insert(conn, rows), 1)}
            result.update(bench_get(conn, hot_queries.MEMORY_GET_LATEST, warmup, timed))
            result["commits_per_s"] = round(bench_commits(conn, f"c{run}-"), 1)
        finally:
            candidate.close(conn)
    return result


# -- asynchronous workload (sqlean only) --------------------------------------------------------


def populate_project_db(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """A database made the project's way: driver.connect + runner.migrate, then the rows."""
    from abathur_memory.store.sqlite import driver
    from abathur_memory.store.sqlite import migrate as runner

    conn = driver.connect(path)
    try:
        runner.migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_SQL, rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def _time_reads(
    calls: dict[str, Callable[[dict], Awaitable[None]]], warmup: list, timed: list
) -> dict[str, dict[str, float]]:
    """Latency of each call, interleaved in blocks so that every call sees the same noise."""
    await warm(calls, warmup)
    samples = await interleaved(calls, timed, READ_BLOCK, clock=time.perf_counter_ns)
    return {name: percentiles_us(values) for name, values in samples.items()}


async def _time_writes(
    writes: dict[str, Callable[[dict], Awaitable[None]]], run: int
) -> dict[str, float]:
    """commits/s of each write, interleaved in blocks like the reads."""

    def params(tag: str, j: int) -> dict[str, str]:
        return {"namespace": namespace_of(j), "key": f"{tag}{run}-{j}", "value": value_of(j)}

    for name, fn in writes.items():
        for j in range(WARMUP_COMMITS):
            await fn(params(name, -1 - j))
    elapsed = dict.fromkeys(writes, 0)
    names = list(writes)
    gc.collect()
    for block, first in enumerate(range(0, COMMITS, WRITE_BLOCK)):
        for name in names[block % len(names) :] + names[: block % len(names)]:
            fn = writes[name]
            start = time.perf_counter_ns()
            for j in range(first, min(first + WRITE_BLOCK, COMMITS)):
                await fn(params(name, j))
            elapsed[name] += time.perf_counter_ns() - start
    return {name: round(COMMITS / (ns / 1e9), 1) for name, ns in elapsed.items()}


async def async_section(path: Path, warmup: list, timed: list, run: int) -> dict[str, dict]:
    """The aiosqlite floor and the project's Database on one file, measured interleaved.

    The floor is a bare ``aiosqlite.Connection`` around ``driver.connect`` (sqlean, Row
    factory, sqlite-vec loaded, seed PRAGMAs, autocommit). ``sync`` is the same query on a
    plain ``driver.connect`` connection with no thread hop, for reference.
    """
    import aiosqlite

    from abathur_memory.store.sqlite import driver
    from abathur_memory.store.sqlite import queries as hot_queries
    from abathur_memory.store.sqlite.database import Database

    sql = hot_queries.MEMORY_GET_LATEST

    def connector() -> Any:
        return driver.connect(path)

    sync_conn = driver.connect(path)
    floor = await aiosqlite.Connection(connector, iter_chunk_size=64)
    db = await Database.open(path)
    try:

        async def sync_fetchone(params: dict) -> None:
            if sync_conn.execute(sql, params).fetchone() is None:
                raise RuntimeError(f"no row for {params}")

        async def floor_fetchall(params: dict) -> None:
            if not await floor.execute_fetchall(sql, params):
                raise RuntimeError(f"no row for {params}")

        async def floor_execute_fetchone_close(params: dict) -> None:
            cursor = await floor.execute(sql, params)
            row = await cursor.fetchone()
            await cursor.close()
            if row is None:
                raise RuntimeError(f"no row for {params}")

        async def project_fetchone(params: dict) -> None:
            if await db.fetchone(sql, params) is None:
                raise RuntimeError(f"no row for {params}")

        async def floor_write(params: dict) -> None:
            await floor.execute("BEGIN IMMEDIATE")
            await floor.execute(INSERT_NAMED_SQL, params)
            await floor.execute("COMMIT")

        async def project_write(params: dict) -> None:
            await db.execute_write(INSERT_NAMED_SQL, params)

        reads = await _time_reads(
            {
                "sync": sync_fetchone,
                "execute_fetchall": floor_fetchall,
                "execute_fetchone_close": floor_execute_fetchone_close,
                "project_fetchone": project_fetchone,
            },
            warmup,
            timed,
        )
        writes = await _time_writes({"af": floor_write, "pd": project_write}, run)
    finally:
        await db.close()
        await floor.close()
        sync_conn.close()

    def flat(prefix: str, values: dict[str, float]) -> dict[str, float]:
        return {f"{prefix}_{key}": value for key, value in values.items()}

    return {
        "async_floor": {
            **flat("execute_fetchall", reads["execute_fetchall"]),
            **flat("execute_fetchone_close", reads["execute_fetchone_close"]),
            "commits_per_s": writes["af"],
            **flat("sync_no_hop", reads["sync"]),
        },
        "project_database": {
            **flat("fetchone", reads["project_fetchone"]),
            "commits_per_s": writes["pd"],
        },
    }


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to insert (100000)")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")

    started = time.perf_counter()
    rng = random.Random(SEED)
    rows = make_rows(args.rows)
    warmup = lookup_params(args.rows, WARMUP_LOOKUPS, rng)
    timed = lookup_params(args.rows, LOOKUPS, rng)

    drivers: dict[str, dict[str, Any]] = {}
    ready: list[Candidate] = []
    for candidate in CANDIDATES:
        try:
            candidate.load()
            drivers[candidate.name] = probe(candidate)
            ready.append(candidate)
        except Exception as exc:
            drivers[candidate.name] = {
                "available": False,
                "reason": f"{type(exc).__name__}: {exc}",
            }

    sync_runs: dict[str, list[dict[str, float]]] = {c.name: [] for c in ready}
    floor_runs: list[dict[str, float]] = []
    project_runs: list[dict[str, float]] = []
    sqlean_ready = any(c.name == "sqlean" for c in ready)
    for run in range(RUNS):
        for candidate in ready:  # round-robin, so slow spells of a noisy host are shared
            sync_runs[candidate.name].append(run_sync(candidate, rows, warmup, timed, run))
        if sqlean_ready:
            with tempfile.TemporaryDirectory(prefix="bench-async-") as tmp:
                path = Path(tmp) / "bench.db"
                populate_project_db(path, rows)
                both = asyncio.run(async_section(path, warmup, timed, run))
                floor_runs.append(both["async_floor"])
                project_runs.append(both["project_database"])

    for name, runs in sync_runs.items():
        drivers[name]["workload"] = median_of_runs(runs)

    result: dict[str, Any] = {
        **header(),
        "rows": args.rows,
        "lookups": LOOKUPS,
        "commits": COMMITS,
        "runs": RUNS,
        "aggregate": "median of runs; latencies per call in microseconds",
        "drivers": drivers,
    }
    if sqlean_ready:
        import aiosqlite

        floor = median_of_runs(floor_runs)
        project = median_of_runs(project_runs)
        result["async_floor"] = {
            "driver": "sqlean",
            "aiosqlite": aiosqlite.__version__,
            "connection": "aiosqlite.Connection(driver.connect, iter_chunk_size=64)",
            "execute_fetchall": "1 await: execute_fetchall(sql, params)",
            "execute_fetchone_close": "3 awaits: execute, fetchone, cursor close",
            "commits": "3 awaits: BEGIN IMMEDIATE, INSERT, COMMIT",
            "sync_no_hop": "the same get on a driver.connect connection, no thread hop",
            **floor,
        }
        result["project_database"] = {
            "calls": "await Database.fetchone(sql, params) / await Database.execute_write",
            **project,
            "overhead_vs_floor": {
                "fetchone_p50_us": round(
                    project["fetchone_p50_us"] - floor["execute_fetchall_p50_us"], 2
                ),
                "commits_per_s_ratio": round(project["commits_per_s"] / floor["commits_per_s"], 2),
            },
        }
    else:
        reason = "sqlean is not importable"
        result["async_floor"] = {"available": False, "reason": reason}
        result["project_database"] = {"available": False, "reason": reason}
    result["elapsed_s"] = round(time.perf_counter() - started, 1)

    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
