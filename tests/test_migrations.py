"""Numbered migrations: applied once, recorded, safe under concurrency, upgrading old layouts."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import layouts
import pytest

from abathur_memory.errors import InvalidInput, Unavailable
from abathur_memory.store.sqlite import checks as validation
from abathur_memory.store.sqlite import driver, legacy
from abathur_memory.store.sqlite import migrate as runner

SEED_TABLES = set(legacy.SEED_TABLES)


def _tables(conn: driver.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrations_are_numbered_and_shipped_as_package_data():
    migrations = runner.load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.statements() for m in migrations)


def test_fresh_database_gets_every_table_index_and_seed_once(db_path):
    conn = driver.connect(db_path)
    try:
        applied = runner.migrate(conn)
        assert applied == [m.version for m in runner.load_migrations()]
        assert SEED_TABLES | {"meta", "schema_migrations"} <= _tables(conn)
        indexes = {
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
        assert set(validation.SEED_INDEXES) <= indexes
        assert len(indexes) >= 32
        recorded = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
        assert [(r[0], r[1]) for r in recorded] == [
            (m.version, m.checksum) for m in runner.load_migrations()
        ]
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        assert meta["schema_version"] == str(runner.latest_version())
        # Applying again does nothing, and seeds stay single.
        assert runner.migrate(conn) == []
        seeds = conn.execute(
            "SELECT namespace, key, version, memory_type, created_by FROM memory_entries"
            " ORDER BY namespace"
        ).fetchall()
        assert [tuple(r) for r in seeds] == [
            ("app:abathur:agent_instructions", "default_workflow", 1, "procedural", "system"),
            ("app:abathur:config", "memory_lifecycle_policies", 1, "procedural", "system"),
            ("app:abathur:defaults", "user_preference_template", 1, "semantic", "system"),
        ]
        policies = json.loads(
            conn.execute(
                "SELECT value FROM memory_entries WHERE key = 'memory_lifecycle_policies'"
            ).fetchone()[0]
        )
        assert policies == {
            "episodic_ttl_days": 90,
            "consolidation_frequency": "weekly",
            "archival_after_days": 365,
        }
    finally:
        conn.close()


def test_partial_indexes_are_partial(conn):
    sql = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall())
    for name, partial in validation.SEED_INDEXES.items():
        assert (" WHERE " in sql[name].upper()) == partial, name


def test_split_statements_keeps_trigger_bodies_whole():
    script = """
    -- a comment
    CREATE TABLE a (x);
    CREATE TRIGGER t AFTER INSERT ON a BEGIN
        INSERT INTO a VALUES (1);
        INSERT INTO a VALUES (2);
    END;
    """
    statements = runner.split_statements(script)
    assert len(statements) == 2
    assert statements[1].endswith("END;")
    with pytest.raises(RuntimeError, match="incomplete"):
        runner.split_statements("CREATE TABLE b (x)")


def _open_and_migrate(path: str, barrier: threading.Barrier) -> list[int]:
    barrier.wait()
    conn = driver.connect(path)
    try:
        return runner.migrate(conn)
    finally:
        conn.close()


def _open_in_process(args: tuple[str, threading.Barrier]) -> list[int]:
    path, barrier = args
    return _open_and_migrate(path, barrier)


@pytest.mark.slow
def test_two_processes_creating_the_same_new_database(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):  # several races, each on a new file
        path = str(tmp_path / f"race{attempt}.db")
        with ctx.Manager() as manager:
            barrier = manager.Barrier(2)
            with ctx.Pool(2) as pool:
                results = pool.map(_open_in_process, [(path, barrier), (path, barrier)])
        everything = [m.version for m in runner.load_migrations()]
        # One process applied everything, the other found it done.
        assert sorted(results, key=len) == [[], everything]
        conn = driver.connect(path)
        try:
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(
                everything
            )
            assert conn.execute("SELECT count(*) FROM memory_entries").fetchone()[0] == 3
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()


def test_database_from_a_newer_version_is_refused(conn):
    conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')"
    )
    with pytest.raises(Unavailable, match="newer than this abathur-memory"):
        runner.migrate(conn)


def test_foreign_sqlite_file_is_not_modified(db_path):
    conn = driver.connect(db_path)
    try:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        with pytest.raises(InvalidInput, match="not created by abathur-memory"):
            runner.migrate(conn)
        assert _tables(conn) == {"invoices"}
    finally:
        conn.close()


def _build_older_database(path: Path) -> None:
    layouts.build_legacy(path)


def _snapshot(conn: driver.Connection, table: str, columns: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(f"SELECT {columns} FROM {table} ORDER BY rowid")]


def test_older_layout_is_upgraded_in_place_keeping_data(db_path, tmp_path):
    _build_older_database(db_path)
    before = driver.connect_plain(db_path)
    old_tasks = _snapshot(before, "tasks", "id, prompt, status, input_data, parent_task_id")
    old_audit = _snapshot(before, "audit", "timestamp, agent_id, task_id, action_type, result")
    before.close()

    conn = driver.connect(db_path)
    try:
        runner.migrate(conn)
        columns = {
            table: {r["name"] for r in conn.execute(f"PRAGMA table_info({table})")}
            for table in ("tasks", "agents", "audit", "checkpoints")
        }
        assert {"session_id", "last_updated_at", "max_execution_timeout_seconds"} <= columns[
            "tasks"
        ]
        assert "session_id" in columns["agents"]
        assert "session_id" in columns["checkpoints"]
        assert {"memory_operation_type", "memory_namespace", "memory_entry_id"} <= columns["audit"]
        # Every old row is still there, unchanged.
        assert _snapshot(conn, "tasks", "id, prompt, status, input_data, parent_task_id") == (
            old_tasks
        )
        assert (
            _snapshot(conn, "audit", "timestamp, agent_id, task_id, action_type, result")
            == old_audit
        )
        assert conn.execute("SELECT last_updated_at FROM tasks WHERE id = 't1'").fetchone()[0] == (
            "2025-01-01 10:05:00"
        )
        assert conn.execute("SELECT count(*) FROM agents").fetchone()[0] == 1
        assert conn.execute("SELECT value FROM state").fetchone()[0] == '"done"'
        assert conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == 1
        assert conn.execute("SELECT state FROM checkpoints").fetchone()[0] == '{"step": 1}'
        assert conn.execute("SELECT body FROM legacy_notes").fetchone()[0] == "kept"
        # The new tables exist and memory audit rows (no task) are now possible.
        conn.execute(
            "INSERT INTO audit (action_type, memory_operation_type, memory_namespace)"
            " VALUES ('memory', 'create', 'user:x')"
        )
        # The whole report passes on the upgraded file.
        checks = validation.run_checks(conn, db_path)
        assert [c.name for c in checks if not c.ok] == []
    finally:
        conn.close()


def test_upgrade_that_cannot_keep_the_data_changes_nothing(db_path):
    _build_older_database(db_path)
    conn = driver.connect_plain(db_path)
    conn.execute(
        "INSERT INTO tasks (id, prompt, status, input_data, submitted_at)"
        " VALUES ('bad', 'x', 'exploded', 'not json', '2025-01-01')"
    )
    schema_before = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    conn.close()

    conn = driver.connect(db_path)
    try:
        with pytest.raises(InvalidInput, match="cannot upgrade table tasks"):
            runner.migrate(conn)
        assert conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == (
            schema_before
        )
        assert "schema_migrations" not in _tables(conn)
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()


def test_upgrade_with_dangling_links_is_refused_without_change(db_path):
    _build_older_database(db_path)
    conn = driver.connect_plain(db_path)
    conn.execute(
        "INSERT INTO audit (timestamp, task_id, action_type) VALUES ('2025-01-01', 'gone', 'x')"
    )
    conn.close()
    conn = driver.connect(db_path)
    try:
        with pytest.raises(InvalidInput, match="foreign key"):
            runner.migrate(conn)
        assert "sessions" not in _tables(conn)
    finally:
        conn.close()
