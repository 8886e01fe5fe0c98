"""The storage refuses to lose writes or to make a denied caller wait: a file deleted or
replaced under a running server, a read-only database, a denied read while another process
holds the write lock."""

from __future__ import annotations

import asyncio
import os
import shutil
import time

import pytest
from mcp_helpers import connected, text_of

from abathur_memory.store.sqlite import driver

pytestmark = pytest.mark.anyio


async def put(client, key, value="v"):
    result = await client.call_tool(
        "memory_put", {"namespace": "user:alice:n", "key": key, "value": value}
    )
    return result.is_error, text_of(result)


async def test_writes_are_refused_once_the_file_is_deleted(any_sqlite_path):
    async with connected(any_sqlite_path) as client:
        error, _ = await put(client, "before")
        assert not error
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{any_sqlite_path}{suffix}"):
                os.remove(f"{any_sqlite_path}{suffix}")
        for n in range(5):  # every later write is refused, none acknowledged
            error, text = await put(client, f"after{n}")
            assert error and text.startswith("unavailable: the database file"), text
            assert "deleted or replaced" in text


async def test_writes_are_refused_once_the_file_is_replaced(tmp_path, any_sqlite_path):
    other = tmp_path / "other.db"
    async with connected(other) as client:
        assert not (await put(client, "other"))[0]
    async with connected(any_sqlite_path) as client:
        assert not (await put(client, "live"))[0]
        shutil.move(other, any_sqlite_path)  # mv other.db live.db
        error, text = await put(client, "lost?")
        assert error and "deleted or replaced" in text, text
    conn = driver.connect(any_sqlite_path)
    try:  # nothing was written into the file now at the path
        keys = {
            r[0]
            for r in conn.execute("SELECT key FROM memory_entries WHERE namespace='user:alice:n'")
        }
        assert keys == {"other"}
    finally:
        conn.close()


async def test_a_read_only_database_says_read_only(db_path, monkeypatch):
    async with connected(db_path) as client:
        assert not (await put(client, "k"))[0]
    real_connect = driver.connect

    def read_only(path, **kwargs):  # what a read-only file or mount does to every write
        kwargs["read_only"] = True
        return real_connect(path, **kwargs)

    monkeypatch.setattr(driver, "connect", read_only)
    async with connected(db_path) as client:
        got = await client.call_tool("memory_get", {"namespace": "user:alice:n", "key": "k"})
        assert not got.is_error
        error, text = await put(client, "k2")
        assert error and text.startswith("read_only: "), text
        assert "try again" not in text


async def test_a_denied_read_does_not_wait_for_the_write_lock(db_path):
    # With the lock held elsewhere, the old code waited busy_timeout for each denial's audit
    # row and then answered "unavailable"; a denial must be answered "forbidden" at once.
    async with connected(db_path, busy_timeout_ms=300, write_retries=0) as client:
        assert not (await put(client, "k"))[0]
        blocker = driver.connect(db_path)
        blocker.execute("BEGIN IMMEDIATE")  # another process writes, for a long time
        try:
            for _ in range(200):
                got = await client.call_tool("memory_get", {"namespace": "user:bob:x", "key": "k"})
                assert got.is_error and text_of(got).startswith("forbidden: "), text_of(got)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        counts = await _denied_counts(db_path, 200)
    # Every denial is audited, folded into a few rows that carry the count.
    assert sum(counts) == 200 and len(counts) <= 5, counts


async def _denied_counts(db_path, total, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        conn = driver.connect(db_path)
        try:
            counts = [
                r[0]
                for r in conn.execute(
                    "SELECT json_extract(action_data, '$.count') FROM audit WHERE result = 'denied'"
                )
            ]
        finally:
            conn.close()
        if sum(counts) >= total or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.05)
