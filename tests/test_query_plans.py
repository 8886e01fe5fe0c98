"""Plans under stale statistics (issue 13): statistics recorded while a database was tiny
must not turn the hot queries into scans once it has grown.

Judged by EXPLAIN QUERY PLAN, never by time: each statement the hot operations really run
is planned on the grown database as the runtime sees it, and compared with its plan on the
same file without statistics (SQLite then assumes large tables: the plan the indexes were
made for). A table scanned under the stale statistics and not without them is a defect.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from acting import Acting
from conftest import settings_for
from indexing_helpers import write_tree

from abathur_memory.core.principal import Principal
from abathur_memory.memory.memories import PutRequest
from abathur_memory.runtime import open_runtime
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite import migrate as runner
from abathur_memory.store.sqlite.memories import _LATEST_MANY
from abathur_memory.store.sqlite.store import SqliteStore

pytestmark = pytest.mark.anyio

ALICE = Principal(user="alice", app="abathur", project="website")
GROWN_ROWS = 20_000
_STATEMENT = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|REPLACE)\b", re.IGNORECASE)


async def _hot_operations(services: Acting, tag: str) -> None:
    """put/get/list/history, sessions append, tasks claim, memory index catch-up, chunk
    upserts, both searches and lifecycle maintenance: the calls a busy server repeats."""
    notes = "user:alice:notes"
    await services.memories.put_many([PutRequest(notes, f"{tag}-batch-{n}", n) for n in range(5)])
    for n in range(3):
        await services.memories.put(notes, f"{tag}{n}", {"text": f"hello {n}"}, "episodic")
    await services.memories.get(notes, f"{tag}1")
    await services.memories.get(notes, f"{tag}1", version=1)
    await services.memories.get(notes, f"{tag}1", as_of=datetime.now(UTC))
    await services.memories.history(notes, f"{tag}1")
    await services.memories.list("user:alice")
    await services.memories.list()
    for then in ({"as_of": "2020-01-01"}, {"valid_at": "2020-01-01"}):
        await services.memories.list("user:alice", **then)
        await services.memories.list(**then)
    await services.memories.delete(notes, f"{tag}2")
    session = await services.sessions.create()
    for _ in range(3):
        await services.sessions.append(session.id, "message", "user", {"text": "hi"})
    await services.sessions.get(session.id)
    await services.sessions.events(session.id)
    await services.sessions.list()
    await services.tasks.create("do it")
    await services.tasks.claim()
    await services.tasks.list()
    await services.runtime.memory_indexer.catch_up()
    await services.runtime.documents.index()
    await services.memories.search("hello")
    await services.memories.search("hello", valid_at="2020-01-01")
    await services.runtime.documents.search(ALICE, "fox")
    await services.runtime.lifecycle.run()


def _grow(db_path: Path) -> None:
    """Tiny-table statistics (what PRAGMA optimize records when a new file closes), then
    many more rows, written without refreshing them."""
    conn = driver.connect(db_path)
    conn.execute("ANALYZE")
    assert conn.execute("SELECT count(*) FROM sqlite_stat1").fetchone()[0] > 0
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO memory_entries (namespace, key, value, memory_type, version, metadata,"
        " created_by, updated_by) SELECT 'user:alice:bulk', 'k' || i, '1', 'semantic', 1, '{}',"
        " 'user:alice', 'user:alice' FROM n",
        (GROWN_ROWS,),
    )
    conn.close()


def _scanned(plan: list[str]) -> set[str]:
    """The tables (by alias) a plan reads whole; virtual tables and subqueries aside."""
    return {
        step.split()[1]
        for step in plan
        if step.startswith("SCAN ") and "VIRTUAL TABLE" not in step and "(" not in step.split()[1]
    }


def _plans(conn: driver.Connection, statements: list[str]) -> dict[str, list[str]]:
    return {
        sql: [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)] for sql in statements
    }


async def test_hot_statements_keep_their_indexes_when_statistics_describe_a_tiny_database(
    tmp_path,
):
    db_path = tmp_path / "grown.db"
    docs = write_tree(tmp_path / "docs")
    async with open_runtime(settings_for(db_path)) as runtime:
        services = Acting(runtime, ALICE)
        await runtime.documents.add_root(str(docs), (), owner=ALICE)
        await _hot_operations(services, "a")
    _grow(db_path)
    reference_path = tmp_path / "no-statistics.db"
    shutil.copy(db_path, reference_path)
    reference = driver.connect(reference_path)
    for table in ("sqlite_stat1", "sqlite_stat4"):
        reference.execute(f"DROP TABLE IF EXISTS {table}")
    reference.close()

    seen: list[str] = []
    async with open_runtime(settings_for(db_path)) as runtime:
        assert isinstance(runtime.store, SqliteStore)
        db = runtime.store.db
        conns = [db._writer._conn, *(reader._conn for reader in db._readers)]
        for conn in conns:
            conn.set_trace_callback(seen.append)
        (docs / "alpha.md").write_text("# Alpha\n\nChanged text about foxes.\n")
        (docs / "new.md").write_text("# New\n\nA new file about foxes.\n")
        try:
            await _hot_operations(Acting(runtime, ALICE), "b")
        finally:
            for conn in conns:
                conn.set_trace_callback(None)
        statements = list(dict.fromkeys(sql for sql in seen if _STATEMENT.match(sql)))
        assert len(statements) > 30, statements  # the operations above did run their SQL
        # As the runtime's own readers plan them: the statistics they loaded at opening.
        stale = await db.read(_plans, statements)
    reference = driver.connect(reference_path)
    try:
        intended = _plans(reference, statements)
    finally:
        reference.close()
    degraded = {
        " ".join(sql.split())[:160]: stale[sql]
        for sql in statements
        if _scanned(stale[sql]) - _scanned(intended[sql])
    }
    assert not degraded, json.dumps(degraded, indent=1)


def test_a_put_batch_looks_each_key_up_by_index_whatever_the_statistics(tmp_path):
    """The put path's query pins its join order: even statistics that call
    memory_entries tiny cannot make it scan the table once per key."""
    conn = driver.connect(tmp_path / "tiny.db")
    runner.migrate(conn)
    conn.execute(
        "INSERT INTO memory_entries (namespace, key, value, memory_type, version, metadata,"
        " created_by, updated_by) VALUES ('user:a', 'k', '1', 'semantic', 1, '{}', 'a', 'a')"
    )
    conn.execute("ANALYZE")  # memory_entries: a handful of rows, as a new file records
    wanted = json.dumps([["user:a", "k"], ["user:a", "j"]])
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + _LATEST_MANY, (wanted,))]
    conn.close()
    assert "m" not in _scanned(plan), plan
    assert any(step.startswith("SEARCH m USING") for step in plan), plan


def test_maintain_keeps_statistics_only_for_tables_big_enough_to_plan_by(tmp_path):
    from abathur_memory.store.sqlite import maintain

    db_path = tmp_path / "maintained.db"
    conn = driver.connect(db_path)
    runner.migrate(conn)
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
        " INSERT INTO memory_entries (namespace, key, value, memory_type, version, metadata,"
        " created_by, updated_by) SELECT 'user:a', 'k' || i, '1', 'semantic', 1, '{}', 'a', 'a'"
        " FROM n"
    )
    steps = maintain.run(conn, db_path)
    described = {row[0] for row in conn.execute("SELECT DISTINCT tbl FROM sqlite_stat1")}
    conn.close()
    assert steps[0].done, steps
    assert described == {"memory_entries"}, described
