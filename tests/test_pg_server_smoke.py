"""Smoke test of the throwaway PostgreSQL + pgvector server (tests/pg_server.py).

Proves on CI that the bundled server starts, has pgvector with HNSW, full-text search and JSONB
GIN, isolates databases and schemas, serves a second OS process and an async pool, and is gone
when its owner is killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pg_server
import psycopg
import pytest


def _temp_base() -> Path:
    # Not tmp_path_factory: as root pgserver makes the parents of pgdata world-traversable, and
    # any pytest session starting meanwhile sets /tmp/pytest-of-root back to 0700.
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="abathur-pg-", dir=shm if shm.is_dir() else None))


@pytest.fixture(scope="module")
def pg_admin_uri() -> Iterator[str]:
    base = _temp_base()
    uri = pg_server.start_postgres(base)
    try:
        yield uri
    finally:
        pg_server.stop_postgres(base)
        base.rmdir()


def _uses_index(
    conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...], index: str
) -> bool:
    plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + query, params))
    return index in plan


def _first(cursor: psycopg.Cursor[Any]) -> Any:
    """The first column of the query's row (a query that returned none fails the test)."""
    row = cursor.fetchone()
    assert row is not None
    return row[0]


def test_vector_fulltext_and_jsonb_indexes(pg_admin_uri: str) -> None:
    with psycopg.connect(pg_admin_uri, autocommit=True) as conn:
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert _first(version).startswith("0.8")
        conn.execute(
            """
            CREATE TABLE items (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                body text NOT NULL,
                meta jsonb NOT NULL,
                embedding vector(3) NOT NULL,
                tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED
            )
            """
        )
        conn.execute(
            "CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_cosine_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )
        conn.execute("CREATE INDEX items_tsv ON items USING gin (tsv)")
        conn.execute("CREATE INDEX items_meta ON items USING gin (meta jsonb_path_ops)")
        conn.execute(
            "INSERT INTO items (body, meta, embedding) VALUES"
            ' (\'Straße café: the quick brown fox jumps\', \'{"tag": "animal", "n": 1}\','
            "  '[1, 0, 0]'),"
            " ('lazy dogs sleep all day', '{\"tag\": \"rest\", \"n\": 2}', '[0, 1, 0]')"
        )
        conn.execute("SET enable_seqscan = off")  # two rows: make the planner show the indexes

        nearest = "SELECT id, embedding <=> %s::vector FROM items ORDER BY 2 LIMIT 1"
        row = conn.execute(nearest, ("[0.9, 0.1, 0]",)).fetchone()
        assert row is not None
        assert row[0] == 1 and row[1] < 0.05
        assert _uses_index(conn, nearest, ("[0.9, 0.1, 0]",), "items_hnsw")

        search = (
            "SELECT id, ts_rank_cd(tsv, q) FROM items, websearch_to_tsquery('english', %s) q"
            " WHERE tsv @@ q ORDER BY 2 DESC"
        )
        hits = conn.execute(search, ('"brown fox" -dogs',)).fetchall()
        assert [h[0] for h in hits] == [1] and hits[0][1] > 0
        assert _uses_index(conn, search, ('"brown fox" -dogs',), "items_tsv")
        # C.UTF-8 collation: non-ASCII letters are lowercased for text search.
        assert _first(conn.execute("SELECT to_tsvector('simple', 'STRASSE Straße')::text")) == (
            "'strasse':1 'straße':2"
        )

        contains = "SELECT id FROM items WHERE meta @> %s::jsonb"
        assert conn.execute(contains, ('{"tag": "rest"}',)).fetchall() == [(2,)]
        assert _uses_index(conn, contains, ('{"tag": "rest"}',), "items_meta")
        conn.execute("DROP TABLE items")


def test_fresh_databases_and_schemas_are_isolated(pg_admin_uri: str) -> None:
    one = pg_server.fresh_database(pg_admin_uri, "smoke_one")
    two = pg_server.fresh_database(pg_admin_uri, "smoke_two")
    try:
        with psycopg.connect(one, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (v vector(2))")
            conn.execute("INSERT INTO t VALUES ('[1, 2]')")
        with psycopg.connect(two, autocommit=True) as conn:
            assert _first(conn.execute("SELECT to_regclass('t')")) is None
            assert _first(conn.execute("SELECT '[3, 4]'::vector(2)")) == "[3,4]"
    finally:
        pg_server.drop_database(pg_admin_uri, "smoke_one")
        pg_server.drop_database(pg_admin_uri, "smoke_two")

    schema_uri = pg_server.fresh_schema(pg_admin_uri, "smoke_schema")
    try:
        with psycopg.connect(schema_uri, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (v vector(2))")  # lands in smoke_schema
            where = _first(conn.execute("SELECT to_regclass('smoke_schema.t')"))
            assert where is not None
        with psycopg.connect(pg_admin_uri) as conn:
            assert _first(conn.execute("SELECT to_regclass('public.t')")) is None
    finally:
        pg_server.drop_schema(pg_admin_uri, "smoke_schema")


def test_a_second_process_connects_at_the_same_time(pg_admin_uri: str) -> None:
    child = textwrap.dedent(
        """
        import sys, psycopg
        with psycopg.connect(sys.argv[1]) as conn:
            print(conn.execute("SELECT pg_backend_pid()").fetchone()[0], flush=True)
            sys.stdin.readline()
        """
    )
    with psycopg.connect(pg_admin_uri, autocommit=True) as conn:
        proc = subprocess.Popen(
            [sys.executable, "-c", child, pg_admin_uri],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        try:
            child_backend = int(proc.stdout.readline())
            backends = {
                row[0]
                for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
                )
            }
            assert {child_backend, conn.info.backend_pid} <= backends
        finally:
            proc.communicate("\n", timeout=10)
        assert proc.returncode == 0


@pytest.mark.anyio
async def test_async_pool_runs_concurrent_queries(pg_admin_uri: str) -> None:
    import anyio

    AsyncConnectionPool = pytest.importorskip("psycopg_pool").AsyncConnectionPool

    results: list[int] = []
    async with AsyncConnectionPool(pg_admin_uri, min_size=2, max_size=5, open=False) as pool:
        await pool.wait(timeout=10)

        async def one(i: int) -> None:
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT %s::int + 0 FROM pg_sleep(0.05)", (i,))
                results.append((await cur.fetchone())[0])

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(one, i)
    assert sorted(results) == list(range(10))


def test_server_stops_when_its_owner_is_killed() -> None:
    base = _temp_base()
    owner = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        sys.path.insert(0, sys.argv[2])
        import pg_server
        print(pg_server.start_postgres(Path(sys.argv[1])), flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", owner, str(base), str(Path(pg_server.__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        uri = proc.stdout.readline().strip()
        with psycopg.connect(uri) as conn:
            postmaster = conn.execute("SELECT pg_postmaster_start_time() IS NOT NULL")
            assert _first(postmaster)
        pid = int((base / "pgdata" / "postmaster.pid").read_text().split()[0])
        proc.send_signal(signal.SIGKILL)  # no atexit: only the watchdog can stop postgres now
        proc.wait(10)
        deadline = time.monotonic() + 15
        while pg_server._alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pg_server._alive(pid), "postgres outlived its killed owner"
        while (base / "pgdata").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (base / "pgdata").exists(), "the watchdog left pgdata behind"
    finally:
        if proc.poll() is None:
            proc.kill()
        pg_server._shutdown_postmaster(base / "pgdata")
        shutil.rmtree(base, ignore_errors=True)
    assert not os.path.exists(base)
