"""memory_search's indexes are caught up in the background, from the first put, without
document roots, after upgrades, and without the search ever writing."""

from __future__ import annotations

import asyncio
import time

import layouts
import pytest
from cli_helpers import run_cli
from mcp_helpers import call, connected

from abathur_memory.search import memory_indexer as memory_index
from abathur_memory.store.sqlite import driver

pytestmark = pytest.mark.anyio


async def search_until(client, query, predicate, *, timeout=15.0, **args):
    """memory_search until ``predicate(result)`` holds (the index is caught up in the
    background); returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = await call(client, "memory_search", query=query, **args)
        if predicate(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


def keys(result):
    """The keyword hits (semantic search ranks every memory, however far)."""
    return [(h["namespace"], h["key"]) for h in result["results"] if h["keyword_rank"]]


def first(result):
    hit = result["results"][0]
    return (hit["namespace"], hit["key"])


async def test_the_first_memory_of_a_database_is_found(any_db_path):
    async with connected(any_db_path) as client:
        await call(client, "memory_put", namespace="user:alice:notes", key="z", value="firstzebra")
        result = await search_until(client, "firstzebra", lambda r: keys(r) and r["pending"] == 0)
        assert keys(result) == [("user:alice:notes", "z")]


async def test_memories_become_semantic_without_any_document_root(any_db_path):
    async with connected(any_db_path) as client:
        for n in range(20):
            await call(
                client,
                "memory_put",
                namespace="user:alice:chat",
                key=f"turn{n}",
                value=f"turn {n}: we talked about sailing boat number {n}",
            )
        result = await search_until(
            client,
            "sailing boat number 7",
            lambda r: r["mode_used"] == "hybrid" and r["pending"] == 0,
        )
        assert result["mode_used"] == "hybrid", result["degraded"]
        assert result["degraded"] is None
        assert result["results"][0]["key"] == "turn7"
        assert result["results"][0]["semantic_rank"] is not None
        semantic = await call(client, "memory_search", query="sailing boat", mode="semantic")
        assert semantic["mode_used"] == "semantic" and semantic["results"]


async def test_memory_search_works_with_the_documents_group_switched_off(any_db_path):
    async with connected(any_db_path, disabled_tools=["documents"]) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "memory_search" in names and "document_search" not in names
        await call(client, "memory_put", namespace="user:alice:n", key="k", value="otter pond")
        result = await search_until(client, "otter", keys)
        assert keys(result) == [("user:alice:n", "k")]


async def test_memory_search_after_upgrading_a_first_release_space(tmp_path):
    db_path = layouts.build_before_memory_search(tmp_path / "old.db", tmp_path / "docs")
    async with connected(db_path) as client:
        await call(client, "memory_put", namespace="user:alice:n", key="k", value="lantern oil")
        result = await search_until(
            client, "lantern oil", lambda r: r["results"] and r["pending"] == 0
        )
        assert keys(result) == [("user:alice:n", "k")]
        assert result["mode_used"] == "hybrid", result["degraded"]
        # The first release's documents are still searchable in the upgraded space.
        docs = await call(client, "document_search", query="lighthouse keeper")
        assert docs["results"][0]["path"] == "old/old.md"
    conn = driver.connect(db_path)
    try:
        # The first release's chunker was older: the server rebuilds the space (as space 2)
        # in the background, so the space is 1 or 2 depending on when this looks.
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        for space_id, ddl_version in conn.execute("SELECT id, ddl_version FROM embedding_spaces"):
            assert f"memory_vectors_s{space_id}" in tables
            assert ddl_version >= 2
    finally:
        conn.close()


async def test_a_search_does_not_wait_for_the_write_lock(db_path):
    async with connected(db_path, busy_timeout_ms=200, write_retries=0) as client:
        await call(client, "memory_put", namespace="user:alice:n", key="k", value="heron")
        await search_until(client, "heron", lambda r: r["results"] and r["pending"] == 0)
        blocker = driver.connect(db_path)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            started = time.monotonic()
            for mode in ("hybrid", "keyword", "semantic"):
                result = await call(client, "memory_search", query="heron", mode=mode)
                assert first(result) == ("user:alice:n", "k")
            # Reads never wait for the lock; the old code waited busy_timeout per search.
            assert time.monotonic() - started < 2.0
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()


async def test_an_idle_server_does_not_write(db_path, monkeypatch):
    monkeypatch.setattr(memory_index, "POLL_S", 0.02)
    async with connected(db_path) as client:
        await call(client, "memory_put", namespace="user:alice:n", key="k", value="quiet")
        await search_until(client, "quiet", lambda r: r["results"] and r["pending"] == 0)
        watcher = driver.connect(db_path)
        try:
            before = watcher.execute("PRAGMA data_version").fetchone()[0]
            await asyncio.sleep(0.5)  # dozens of indexer rounds
            await call(client, "memory_search", query="quiet")
            await call(client, "memory_get", namespace="user:alice:n", key="k")
            after = watcher.execute("PRAGMA data_version").fetchone()[0]
            assert after == before, "something committed while the server was idle"
        finally:
            watcher.close()


def test_doctor_finds_memories_missing_from_the_keyword_index(capsys, tmp_path):
    """The first release stored cursor 1 over an empty audit table: memory 1 was never
    indexed, and doctor said the index was consistent."""
    db_path = tmp_path / "drift.db"
    assert run_cli(capsys, "init", "--db", str(db_path)).code == 0

    async def put_and_index():
        from acting import open_acting
        from conftest import settings_for

        async with open_acting(settings_for(db_path)) as services:
            await services.memories.put("user:alice:n", "z", "firstzebra")
            await services.runtime.memory_indexer.catch_up()

    asyncio.run(put_and_index())
    conn = driver.connect(db_path)
    conn.execute("DELETE FROM memory_fts WHERE text LIKE '%firstzebra%'")
    conn.execute("DELETE FROM memory_fts_keys WHERE key = 'z'")
    conn.close()
    report = run_cli(capsys, "doctor", "--json", "--db", str(db_path))
    assert report.code == 1
    check = next(c for c in report.json()["checks"] if c["name"] == "index consistency")
    assert "1 live memories are missing from the keyword index" in check["detail"]
    assert run_cli(capsys, "doctor", "--repair", "--json", "--db", str(db_path)).code == 0
    conn = driver.connect(db_path)
    try:
        assert conn.execute("SELECT count(*) FROM memory_fts_keys WHERE key = 'z'").fetchone()[0]
    finally:
        conn.close()
