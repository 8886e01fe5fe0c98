"""A full disk while `backup`, `restore` or `migrate` writes a SQLite file (issue 13 item 8):
one `error:` line naming the file, the partial file removed, exit status 1.

The real thing is a tmpfs of 512 KiB mounted for the test (root only); where it cannot be
mounted those tests skip with the reason, and the in-process variants below (ENOSPC and
SQLITE_FULL raised where the writes happen) run everywhere.
"""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest
from cli_helpers import Result, run_cli

from abathur_memory.store.sqlite import backup as backups
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite import migrate as runner

ROWS = 3000  # about 3 MB of memories: more than the tiny disk holds


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "full"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (root only): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _database(path: Path, rows: int = ROWS) -> Path:
    conn = driver.connect(path)
    try:
        runner.migrate(conn)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO memory_entries (namespace, key, value, memory_type)"
            " VALUES ('user:t', ?, ?, 'semantic')",
            [(f"k{i}", f'{{"n": {i}, "pad": "{"x" * 900}"}}') for i in range(rows)],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return path


def _count(path: Path) -> int:
    conn = driver.connect_plain(path)
    try:
        return int(conn.execute("SELECT count(*) FROM memory_entries").fetchone()[0])
    finally:
        conn.close()


def _one_error_line(result: Result) -> str:
    assert result.code == 1, (result.out, result.err)
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


@pytest.mark.parametrize(
    "dest",
    ["copy.db", "copy.db.gz", "."],  # a file, a compressed file, a directory of backups
)
def test_a_backup_onto_a_full_disk_is_one_line_and_leaves_nothing(
    capsys, tmp_path, tiny_disk, dest
):
    source = _database(tmp_path / "big.db")
    target = tiny_disk / dest
    line = _one_error_line(run_cli(capsys, "backup", str(target), "--db", str(source)))
    assert line.startswith(f"error: no space left on device writing {tiny_disk}/")
    assert line.endswith("; the partial backup was removed")
    assert list(tiny_disk.iterdir()) == []


def test_a_restore_onto_a_full_disk_leaves_the_database_as_it_was(capsys, tmp_path, tiny_disk):
    backup_file = _database(tmp_path / "big.db")
    live = _database(tiny_disk / "live.db", rows=10)
    line = _one_error_line(run_cli(capsys, "restore", str(backup_file), "--db", str(live)))
    assert line == (
        f"error: no space left on device writing {live}; the database was left as it was "
        "and the partial copies were removed"
    )
    assert _count(live) == 10 + 3  # its own rows and the seed memories
    assert sorted(p.name for p in tiny_disk.iterdir() if not p.name.startswith("live.db")) == []


def test_a_migrate_onto_a_full_disk_removes_the_partial_copy(capsys, tmp_path, tiny_disk):
    source = _database(tmp_path / "big.db")
    target = tiny_disk / "copy.db"
    line = _one_error_line(run_cli(capsys, "migrate", "--db", str(source), "--to", str(target)))
    assert line == f"error: no space left on device writing {target}; the partial copy was removed"
    assert list(tiny_disk.iterdir()) == []


# -- everywhere: the failures injected where the writes happen ------------------------------


def test_enospc_while_compressing_a_backup_is_one_line(capsys, tmp_path, monkeypatch):
    source = _database(tmp_path / "db.db", rows=20)

    def full(src, dst, length=0):
        dst.write(src.read(1000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backups.shutil, "copyfileobj", full)
    target = tmp_path / "out" / "copy.db.gz"
    target.parent.mkdir()
    line = _one_error_line(run_cli(capsys, "backup", str(target), "--db", str(source)))
    assert (
        line == f"error: no space left on device writing {target}; the partial backup was removed"
    )
    assert list(target.parent.iterdir()) == []


def test_a_disk_filling_while_restoring_removes_the_copy_of_the_old_database(
    capsys, tmp_path, monkeypatch
):
    backup_file = _database(tmp_path / "backup.db", rows=20)
    live = _database(tmp_path / "live.db", rows=5)
    real = backups._snapshot

    def fills_up(db_path, target):
        real(db_path, target)  # the copy of the old database is written, then the disk is full
        raise driver.OperationalError("database or disk is full")

    monkeypatch.setattr(backups, "_snapshot", fills_up)
    line = _one_error_line(run_cli(capsys, "restore", str(backup_file), "--db", str(live)))
    assert line.startswith(f"error: no space left on device writing {live}; the database was left")
    assert not list(tmp_path.glob("live.before-restore-*"))
    assert _count(live) == 5 + 3
