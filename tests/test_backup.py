"""Backups (online, verified, pruned), restores (verified, reversible) and salvage."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest
from cli_helpers import run_cli

from abathur_memory.errors import Conflict, InvalidInput, NotFound
from abathur_memory.store.sqlite import backup, driver, salvage
from abathur_memory.store.sqlite import checks as validation
from abathur_memory.store.sqlite import migrate as runner


def _make_db(path: Path, rows: int = 0) -> None:
    conn = driver.connect(path)
    try:
        runner.migrate(conn)
        conn.execute("BEGIN")
        for i in range(rows):
            conn.execute(
                "INSERT INTO memory_entries (namespace, key, value, memory_type)"
                " VALUES ('user:t', ?, ?, 'semantic')",
                (f"k{i}", f'{{"n": {i}, "pad": "{"x" * 200}"}}'),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


def _keys(path: Path) -> set[str]:
    conn = driver.connect_plain(path)
    try:
        return {
            r[0] for r in conn.execute("SELECT key FROM memory_entries WHERE namespace='user:t'")
        }
    finally:
        conn.close()


def _doctor_ok(path: Path) -> list[str]:
    conn = driver.connect(path)
    try:
        return [c.name for c in validation.run_checks(conn, path) if not c.ok]
    finally:
        conn.close()


def test_backup_to_a_directory_is_timestamped_verified_and_self_contained(db_path, tmp_path):
    _make_db(db_path, rows=50)
    result = backup.backup(db_path, tmp_path / "backups")
    assert result.path.parent == tmp_path / "backups"
    assert backup.backup_name_pattern(db_path).match(result.path.name)
    assert backup.verify_database(result.path) is None
    assert not Path(f"{result.path}-wal").exists()
    assert _keys(result.path) == {f"k{i}" for i in range(50)}


def test_backup_to_a_file_name_and_gzip(db_path, tmp_path):
    _make_db(db_path, rows=10)
    plain = backup.backup(db_path, tmp_path / "copy.db")
    assert plain.path == tmp_path / "copy.db"
    packed = backup.backup(db_path, tmp_path / "copy2.db", compress=True)
    assert packed.path == tmp_path / "copy2.db.gz"
    with gzip.open(packed.path, "rb") as fh:
        assert fh.read(16) == backup.SQLITE_MAGIC
    with pytest.raises(Conflict, match="already exists"):
        backup.backup(db_path, tmp_path / "copy.db")


def test_backup_errors(db_path, tmp_path):
    with pytest.raises(NotFound, match="no database"):
        backup.backup(db_path, tmp_path / "b")
    _make_db(db_path)
    with pytest.raises(InvalidInput, match="keep-days"):
        backup.backup(db_path, tmp_path / "one.db", keep_days=3)
    with pytest.raises(NotFound, match="does not exist"):
        backup.backup(db_path, tmp_path / "missing-dir" / "one.db")


def test_retention_deletes_only_its_own_old_backups(db_path, tmp_path):
    _make_db(db_path)
    target = tmp_path / "backups"
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    old = backup.backup(db_path, target, now=now - timedelta(days=40)).path
    recent = backup.backup(db_path, target, compress=True, now=now - timedelta(days=5)).path
    other_db_old = target / "otherdb-20250101T000000Z.db"
    unrelated = target / "notes-20200101T000000Z.txt"
    lookalike = target / f"{db_path.stem}-20200101T000000Z.db.bak"
    for path in (other_db_old, unrelated, lookalike):
        path.write_text("keep me")
    result = backup.backup(db_path, target, keep_days=30, now=now)
    assert result.pruned == [old]
    assert not old.exists()
    for path in (recent, result.path, other_db_old, unrelated, lookalike):
        assert path.exists(), path


def test_restore_replaces_and_keeps_the_previous_database(db_path, tmp_path):
    _make_db(db_path, rows=5)
    saved = backup.backup(db_path, tmp_path / "saved.db.gz", compress=True).path
    _make_db(db_path, rows=0)
    conn = driver.connect(db_path)
    conn.execute("DELETE FROM memory_entries WHERE key IN ('k0', 'k1')")
    conn.close()
    assert _keys(db_path) == {"k2", "k3", "k4"}

    result = backup.restore(saved, db_path)
    assert _keys(db_path) == {f"k{i}" for i in range(5)}
    assert result.previous_copy is not None
    assert _keys(result.previous_copy) == {"k2", "k3", "k4"}
    assert _doctor_ok(db_path) == []


def test_restore_into_a_new_location(db_path, tmp_path):
    _make_db(db_path, rows=3)
    saved = backup.backup(db_path, tmp_path / "saved.db").path
    fresh = tmp_path / "elsewhere" / "new.db"
    result = backup.restore(saved, fresh)
    assert result.previous_copy is None
    assert _keys(fresh) == {"k0", "k1", "k2"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, this is a text file" * 100, "not a SQLite database"),
        (b"", "empty"),
        (gzip.compress(b"not sqlite inside" * 100), "not a SQLite database"),
        (b"\x1f\x8b\x08\x00broken gzip", "cannot read the gzip file"),
    ],
)
def test_restore_refuses_non_databases_and_changes_nothing(db_path, tmp_path, content, message):
    _make_db(db_path, rows=2)
    bad = tmp_path / "bad.db"
    bad.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        backup.restore(bad, db_path)
    assert _keys(db_path) == {"k0", "k1"}
    assert not list(db_path.parent.glob("*.before-restore-*"))


def _corrupt(path: Path, page_numbers: list[int]) -> None:
    conn = driver.connect_plain(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with path.open("r+b") as fh:
        for page in page_numbers:
            fh.seek((page - 1) * page_size + 8)
            fh.write(os.urandom(page_size - 16))


def _leaf_pages_of(path: Path, table: str) -> dict[int, int]:
    """{page number: rows on it} for the table's leaf pages."""
    conn = driver.connect_plain(path)
    try:
        rows = conn.execute(
            "SELECT pageno, ncell FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
            (table,),
        ).fetchall()
        return {r[0]: r[1] for r in rows}
    finally:
        conn.close()


def test_restore_refuses_a_corrupt_backup(db_path, tmp_path):
    _make_db(db_path, rows=300)
    saved = backup.backup(db_path, tmp_path / "saved.db").path
    leaves = list(_leaf_pages_of(saved, "memory_entries"))
    _corrupt(saved, leaves[len(leaves) // 2 : len(leaves) // 2 + 1])
    with pytest.raises(InvalidInput, match="integrity_check failed"):
        backup.restore(saved, db_path)
    assert len(_keys(db_path)) == 300


def test_restore_refuses_a_sqlite_file_of_another_program(db_path, tmp_path):
    _make_db(db_path)
    other = tmp_path / "other.db"
    conn = driver.connect_plain(other)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(InvalidInput, match="not an abathur-memory one"):
        backup.restore(other, db_path)


def _write_stream(path: str, acknowledged: Synchronized[int], stop: Event) -> None:
    conn = driver.connect(path)
    i = 0
    while not stop.is_set():
        i += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO memory_entries (namespace, key, value, memory_type)"
            " VALUES ('user:stream', ?, '{}', 'episodic')",
            (f"{i:08d}",),
        )
        conn.execute("COMMIT")
        acknowledged.value = i  # only after the commit returned
    conn.close()


@pytest.mark.slow
def test_backup_during_a_stream_of_writes_holds_every_acknowledged_write(db_path, tmp_path):
    _make_db(db_path, rows=200)
    ctx = multiprocessing.get_context("spawn")
    acknowledged = ctx.Value("q", 0)
    stop = ctx.Event()
    writer = ctx.Process(target=_write_stream, args=(str(db_path), acknowledged, stop))
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while acknowledged.value < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        before_backup = acknowledged.value
        assert before_backup >= 300, "the writer did not get going"
        result = backup.backup(db_path, tmp_path / "live", compress=True)
        after_backup = acknowledged.value
    finally:
        stop.set()
        writer.join(30)
    assert after_backup > before_backup, "writes continued during the backup"
    restored = tmp_path / "restored.db"
    backup.restore(result.path, restored)
    conn = driver.connect(restored)
    try:
        keys = {
            int(r[0])
            for r in conn.execute("SELECT key FROM memory_entries WHERE namespace='user:stream'")
        }
    finally:
        conn.close()
    assert set(range(1, before_backup + 1)) <= keys
    assert _doctor_ok(restored) == []


def test_salvage_recovers_what_is_readable_from_a_damaged_file(db_path, tmp_path):
    _make_db(db_path, rows=2000)
    conn = driver.connect(db_path)
    conn.execute(
        "INSERT INTO sessions (id, app_name, user_id, status) VALUES ('s1', 'a', 'u', 'active')"
    )
    conn.execute(
        "INSERT INTO tasks (id, prompt, status, input_data, submitted_at, last_updated_at,"
        " session_id) VALUES ('t1', 'p', 'pending', '{}', 'x', 'x', 's1')"
    )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    leaves = _leaf_pages_of(db_path, "memory_entries")
    assert len(leaves) > 20
    damaged_pages = list(leaves)[5:7]
    rows_on_damaged_pages = sum(leaves[p] for p in damaged_pages)
    _corrupt(db_path, damaged_pages)
    assert backup.verify_database(db_path) is not None  # really damaged

    out = tmp_path / "salvaged.db"
    result = salvage.salvage(db_path, out)
    assert backup.verify_database(out) is None
    recovered = _keys(out)
    # Everything outside the two damaged pages came back.
    user_rows = 2000
    assert user_rows - rows_on_damaged_pages <= len(recovered) < user_rows
    assert result.tables["memory_entries"].read_errors >= 1
    assert result.tables["sessions"].copied == 1
    assert result.tables["tasks"].copied == 1
    assert _doctor_ok(out) == []


def test_salvage_refuses_to_overwrite_and_needs_an_input(db_path, tmp_path):
    with pytest.raises(NotFound):
        salvage.salvage(db_path, tmp_path / "out.db")
    _make_db(db_path)
    existing = tmp_path / "exists.db"
    existing.write_text("x")
    with pytest.raises(Conflict, match="already exists"):
        salvage.salvage(db_path, existing)


def test_backup_restore_and_recover_from_the_command_line(capsys, db_path, tmp_path):
    _make_db(db_path, rows=3)
    out = run_cli(capsys, "backup", str(tmp_path / "bk"), "--gzip", "--db", str(db_path))
    assert out.code == 0 and "verified" in out.out
    made = next((tmp_path / "bk").iterdir())
    restored = run_cli(capsys, "restore", str(made), "--db", str(tmp_path / "r.db"))
    assert restored.code == 0
    assert _keys(tmp_path / "r.db") == {"k0", "k1", "k2"}
    bad = run_cli(capsys, "restore", str(tmp_path / "nope.db"), "--db", str(db_path))
    assert bad.code == 1 and bad.err.startswith("error: no backup file at")
    recovered = run_cli(
        capsys, "doctor", "--json", "--recover", str(tmp_path / "s.db"), "--db", str(db_path)
    )
    assert recovered.code == 0
    assert recovered.json()["ok"] is True
    assert _keys(tmp_path / "s.db") == {"k0", "k1", "k2"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("backup", "{tmp}/bk.db"), "pg_dump -Fc"),
        (("restore", "{tmp}/bk.db"), "pg_dump -Fc"),
        (("doctor", "--recover", "{tmp}/s.db"), "recovers from its own WAL"),
    ],
    ids=["backup", "restore", "recover"],
)
def test_a_postgresql_database_has_no_file_copies(capsys, pg_url, tmp_path, args, says):
    """Backups, restores and salvage copy a database file: on PostgreSQL (whose operations
    have no ``files``) each is a usage error naming the server's own tools, writing nothing."""
    (tmp_path / "bk.db").write_bytes(b"")  # a source for restore: never read
    argv = [a.format(tmp=tmp_path) for a in args]
    result = run_cli(capsys, *argv, "--db", pg_url)
    assert result.code == 2
    assert says in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bk.db"]
