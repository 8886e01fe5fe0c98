"""The schema itself rejects bad rows: JSON, enums, versions, foreign keys."""

from __future__ import annotations

import pytest

from abathur_memory.store.sqlite import driver

MEMORY = (
    "INSERT INTO memory_entries (namespace, key, value, memory_type, version, metadata)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
SESSION = (
    "INSERT INTO sessions (id, app_name, user_id, status, events, state, metadata)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
TASK = (
    "INSERT INTO tasks (id, prompt, status, input_data, submitted_at, last_updated_at, session_id,"
    " parent_task_id, priority) VALUES (?, 'p', ?, ?, '2026-01-01', '2026-01-01', ?, ?, ?)"
)


def _count(conn: driver.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_valid_rows_are_accepted(conn):
    conn.execute(MEMORY, ("user:a", "k", '{"x": 1}', "semantic", 1, "{}"))
    conn.execute(SESSION, ("s1", "app", "a", "active", "[]", "{}", "{}"))
    conn.execute(TASK, ("t1", "pending", "{}", "s1", None, 5))
    assert _count(conn, "memory_entries") == 4  # three seeds + one


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (("user:a", "k", "{not json", "semantic", 1, "{}"), "invalid JSON value"),
        (("user:a", "k", '"ok"', "semantic", 1, "[1,"), "invalid JSON metadata"),
        (("user:a", "k", '"ok"', "emotional", 1, "{}"), "unknown memory_type"),
        (("user:a", "k", '"ok"', "semantic", 0, "{}"), "version 0"),
        (("user:a", "k", '"ok"', "semantic", -3, "{}"), "negative version"),
    ],
)
def test_memory_rows_that_break_a_rule_are_rejected(conn, row, reason):
    before = _count(conn, "memory_entries")
    with pytest.raises(driver.IntegrityError, match="CHECK constraint failed"):
        conn.execute(MEMORY, row)
    assert _count(conn, "memory_entries") == before, reason


def test_the_same_version_of_a_key_cannot_exist_twice(conn):
    conn.execute(MEMORY, ("user:a", "k", '"v1"', "semantic", 1, "{}"))
    with pytest.raises(driver.IntegrityError, match="UNIQUE"):
        conn.execute(MEMORY, ("user:a", "k", '"again"', "semantic", 1, "{}"))


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (("s", "app", "a", "sleeping", "[]", "{}", "{}"), "unknown status"),
        (("s", "app", "a", "active", "[oops", "{}", "{}"), "invalid events"),
        (("s", "app", "a", "active", "[]", "{'a': 1}", "{}"), "invalid state"),
        (("s", "app", "a", "active", "[]", "{}", "nope"), "invalid metadata"),
    ],
)
def test_session_rows_that_break_a_rule_are_rejected(conn, row, reason):
    with pytest.raises(driver.IntegrityError, match="CHECK constraint failed"):
        conn.execute(SESSION, row)
    assert _count(conn, "sessions") == 0, reason


def test_document_metadata_must_be_json(conn):
    with pytest.raises(driver.IntegrityError, match="CHECK"):
        conn.execute(
            "INSERT INTO document_index (file_path, title, content_hash, metadata, sync_status)"
            " VALUES ('a.md', 'A', 'h', '{bad', 'pending')"
        )
    with pytest.raises(driver.IntegrityError, match="CHECK"):
        conn.execute(
            "INSERT INTO document_index (file_path, title, content_hash, sync_status)"
            " VALUES ('a.md', 'A', 'h', 'indexed')"
        )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("t", "pending", "{}", "no-such-session", None, 5), "FOREIGN KEY"),
        (("t", "pending", "{}", None, "no-such-parent", 5), "FOREIGN KEY"),
        (("t", "dreaming", "{}", None, None, 5), "CHECK"),
        (("t", "pending", "{x", None, None, 5), "CHECK"),
        (("t", "pending", "{}", None, None, 11), "CHECK"),
    ],
)
def test_task_rows_that_break_a_rule_are_rejected(conn, row, message):
    with pytest.raises(driver.IntegrityError, match=message):
        conn.execute(TASK, row)
    assert _count(conn, "tasks") == 0


def test_foreign_keys_cover_agents_audit_and_checkpoints(conn):
    with pytest.raises(driver.IntegrityError, match="FOREIGN KEY"):
        conn.execute(
            "INSERT INTO agents (id, name, specialization, state, model, spawned_at, session_id)"
            " VALUES ('a', 'n', 's', 'idle', 'm', '2026-01-01', 'ghost')"
        )
    with pytest.raises(driver.IntegrityError, match="FOREIGN KEY"):
        conn.execute("INSERT INTO audit (action_type, memory_entry_id) VALUES ('x', 424242)")
    with pytest.raises(driver.IntegrityError, match="FOREIGN KEY"):
        conn.execute(
            "INSERT INTO checkpoints (task_id, iteration, state, created_at)"
            " VALUES ('ghost', 1, '{}', '2026-01-01')"
        )
    with pytest.raises(driver.IntegrityError, match="CHECK"):
        conn.execute(
            "INSERT INTO audit (action_type, memory_operation_type) VALUES ('x', 'teleport')"
        )


def test_deleting_a_session_detaches_its_tasks(conn):
    conn.execute(SESSION, ("s1", "app", "a", "active", "[]", "{}", "{}"))
    conn.execute(TASK, ("t1", "pending", "{}", "s1", None, 5))
    conn.execute("DELETE FROM sessions WHERE id = 's1'")
    assert conn.execute("SELECT session_id FROM tasks WHERE id = 't1'").fetchone()[0] is None
