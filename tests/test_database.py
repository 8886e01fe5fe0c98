"""The async database: one writer, readers, transactions, busy handling, error mapping."""

from __future__ import annotations

import asyncio

import pytest

from abathur_memory.errors import InvalidInput, Unavailable
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite.database import Database

pytestmark = pytest.mark.anyio

INSERT_METRIC = "INSERT INTO metrics (timestamp, metric_name, metric_value) VALUES ('t', ?, ?)"


async def _metric_count(db: Database) -> int:
    row = await db.fetchone("SELECT count(*) FROM metrics")
    assert row is not None
    return row[0]


async def test_open_migrates_and_reads_see_committed_writes(db):
    assert (await db.fetchone("SELECT count(*) FROM memory_entries"))[0] == 3
    assert await db.execute_write(INSERT_METRIC, ("m", 1.0)) == 1
    assert await _metric_count(db) == 1
    rows = await db.fetchall("SELECT metric_name FROM metrics")
    assert [r["metric_name"] for r in rows] == ["m"]


async def test_a_failing_write_function_rolls_back_everything(db):
    def two_inserts_then_fail(conn):
        conn.execute(INSERT_METRIC, ("a", 1.0))
        conn.execute(INSERT_METRIC, ("b", 2.0))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await db.write(two_inserts_then_fail)
    assert await _metric_count(db) == 0
    # The writer is usable afterwards (no transaction left open).
    await db.execute_write(INSERT_METRIC, ("c", 3.0))
    assert await _metric_count(db) == 1


async def test_constraint_errors_reach_the_caller_and_change_nothing(db):
    def bad(conn):
        conn.execute(INSERT_METRIC, ("ok", 1.0))
        conn.execute(INSERT_METRIC, ("negative", -1.0))

    with pytest.raises(driver.IntegrityError):
        await db.write(bad)
    assert await _metric_count(db) == 0


async def test_read_function_sees_one_snapshot(db, db_path):
    def two_counts(conn):
        first = conn.execute("SELECT count(*) FROM metrics").fetchone()[0]
        other = driver.connect(db_path)  # another writer commits between the two reads
        try:
            other.execute(INSERT_METRIC, ("concurrent", 2.0))
        finally:
            other.close()
        second = conn.execute("SELECT count(*) FROM metrics").fetchone()[0]
        return first, second

    await db.execute_write(INSERT_METRIC, ("m", 1.0))
    assert await db.read(two_counts) == (1, 1)  # one snapshot: the commit is not seen
    assert await _metric_count(db) == 2  # it did commit


async def test_readers_cannot_write(db):
    with pytest.raises(Unavailable, match="read-only"):
        await db.fetchall(
            "INSERT INTO metrics (timestamp, metric_name, metric_value) VALUES (1,1,1)"
        )


async def test_fifty_concurrent_reads_all_answer(db):
    await db.execute_write(INSERT_METRIC, ("m", 1.0))
    results = await asyncio.gather(
        *(db.fetchone("SELECT count(*) FROM metrics") for _ in range(50))
    )
    assert [r[0] for r in results] == [1] * 50


async def test_concurrent_writes_from_one_process_are_serialised(db):
    await asyncio.gather(*(db.execute_write(INSERT_METRIC, (f"m{i}", i)) for i in range(100)))
    assert await _metric_count(db) == 100


async def test_lock_held_by_another_process_becomes_unavailable_not_locked(db, db_path):
    other = driver.connect(db_path)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Unavailable) as caught:
            await db.execute_write(INSERT_METRIC, ("m", 1.0))
        message = str(caught.value)
        assert "busy" in message and "locked" not in message
    finally:
        other.execute("ROLLBACK")
        other.close()
    # Once the lock is released, writes go through again.
    await db.execute_write(INSERT_METRIC, ("m", 1.0))
    assert await _metric_count(db) == 1


async def test_a_write_waits_for_a_short_lock_instead_of_failing(db, db_path):
    other = driver.connect(db_path)
    other.execute("BEGIN IMMEDIATE")
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, lambda: (other.execute("ROLLBACK"), other.close()))
    # busy_timeout is 200 ms in the fixture, so this needs the retry with backoff.
    await db.execute_write(INSERT_METRIC, ("m", 1.0))
    assert await _metric_count(db) == 1


async def test_closed_database_is_unavailable(db_path):
    db = await Database.open(db_path, readers=1)
    await db.close()
    await db.close()  # idempotent
    with pytest.raises(Unavailable, match="closed"):
        await db.fetchone("SELECT 1")
    with pytest.raises(Unavailable, match="closed"):
        await db.execute_write(INSERT_METRIC, ("m", 1.0))


@pytest.mark.parametrize("bad", ["", ":memory:"])
async def test_in_memory_paths_are_refused(bad):
    with pytest.raises(InvalidInput, match="on-disk"):
        await Database.open(bad)


async def test_directory_and_non_database_paths_are_clear_errors(tmp_path):
    with pytest.raises(InvalidInput, match="is a directory"):
        await Database.open(tmp_path)
    text = tmp_path / "notes.db"
    text.write_text("these are not the pages you are looking for" * 20)
    with pytest.raises(InvalidInput, match="not a SQLite database"):
        await Database.open(text)
    assert text.read_text().startswith("these are not")
