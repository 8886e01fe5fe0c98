"""Backups with SQLite's online backup API, verified restores, and salvage of damaged files.

The backup API copies the database in one step under a read transaction, so in WAL mode a
backup is a consistent snapshot even while a server keeps writing, and it never blocks it.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import tempfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from abathur_memory.errors import Conflict, InvalidInput, NotFound, Unavailable
from abathur_memory.store.operations import BackupResult, RestoreResult
from abathur_memory.store.sqlite import ann_files, disk_full, driver
from abathur_memory.store.sqlite import migrate as runner

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
GZIP_MAGIC = b"\x1f\x8b"
_STAMP = "%Y%m%dT%H%M%SZ"
# A DEST ending in one of these is a file name; anything else is a directory of backups.
FILE_SUFFIXES = (".db", ".db.gz", ".sqlite", ".sqlite3", ".gz")


def backup_name_pattern(db_path: Path) -> re.Pattern[str]:
    """File names this tool writes for ``db_path`` in directory mode (and may prune)."""
    return re.compile(rf"^{re.escape(db_path.stem)}-(\d{{8}}T\d{{6}}Z)\.db(\.gz)?$")


def backup(
    db_path: Path,
    dest: Path,
    *,
    compress: bool = False,
    keep_days: int | None = None,
    now: datetime | None = None,
) -> BackupResult:
    """Copy ``db_path`` to ``dest`` and verify the copy.

    ``dest`` is a file name when it ends in ``.db``/``.sqlite``/``.gz`` (a ``.gz`` name is
    always compressed); otherwise it is a directory (created if needed) that receives
    ``<db-stem>-<UTC timestamp>.db[.gz]``.

    ``keep_days`` prunes, in directory mode only, this database's own timestamped backups
    older than that many days; other files in the directory are never touched.
    """
    db_path = _existing_database(db_path)
    now = now or datetime.now(UTC)
    directory_mode = dest.is_dir() or not dest.name.endswith(FILE_SUFFIXES)
    if not directory_mode and dest.name.endswith(".gz"):
        compress = True  # a .gz name gets gzip, with or without --gzip
    if directory_mode:
        dest.mkdir(parents=True, exist_ok=True)
        suffix = ".db.gz" if compress else ".db"
        target = dest / f"{db_path.stem}-{now.strftime(_STAMP)}{suffix}"
    else:
        if keep_days is not None:
            raise InvalidInput("--keep-days needs DEST to be a directory of backups")
        target = dest.with_name(dest.name + ".gz") if compress and dest.suffix != ".gz" else dest
        if not target.parent.is_dir():
            raise NotFound(f"the directory {target.parent} does not exist")
    if target.exists():
        raise Conflict(f"{target} already exists; choose another name or a directory")

    # Written in a temporary folder beside the target, which goes with whatever was
    # half written (a full disk included) before the error is reported.
    with (
        disk_full.reported(target, "the partial backup was removed"),
        tempfile.TemporaryDirectory(dir=target.parent, prefix=".abathur-backup-") as tmp,
    ):
        snapshot = Path(tmp) / "snapshot.db"
        _snapshot(db_path, snapshot)
        problem = verify_database(snapshot)
        if problem:
            raise Unavailable(f"the backup failed verification ({problem}); nothing was written")
        staged = Path(tmp) / target.name
        if compress:
            with snapshot.open("rb") as src, gzip.open(staged, "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
        else:
            snapshot.replace(staged)
        _fsync(staged)
        os.replace(staged, target)
    pruned = _prune(dest, db_path, keep_days, now) if directory_mode and keep_days else []
    return BackupResult(target, target.stat().st_size, pruned)


def restore(src: Path, db_path: Path, *, now: datetime | None = None) -> RestoreResult:
    """Replace ``db_path`` with the verified backup ``src``, keeping the old one beside it."""
    if not src.is_file():
        raise NotFound(f"no backup file at {src}")
    now = now or datetime.now(UTC)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    previous = None
    if db_path.exists():
        previous = db_path.with_name(f"{db_path.stem}.before-restore-{now.strftime(_STAMP)}.db")
    made: list[Path] = []  # what this restore wrote beside the database, so far

    def remove_made() -> None:
        for path in made:
            disk_full.remove_database_files(path)

    untouched = "the database was left as it was and the partial copies were removed"
    with (
        disk_full.reported(db_path, untouched, remove_made),
        tempfile.TemporaryDirectory(dir=db_path.parent, prefix=".abathur-restore-") as tmp,
    ):
        candidate = _private_copy(src, Path(tmp))
        problem = verify_database(candidate, require_abathur=True)
        if problem:
            raise InvalidInput(f"refusing to restore {src}: {problem}; nothing was replaced")
        if previous is not None:
            made.append(previous)
            _snapshot(db_path, previous)
        source = driver.connect_plain(candidate)
        try:
            target = driver.connect(db_path)
            try:
                # Writing through SQLite (not replacing the file) keeps processes that have
                # the database open consistent: they see the restored content on next read.
                # A failure rolls the database back: it is left as it was.
                source.backup(target)
                made.clear()  # restored: the copy of what it was is all that is left of it
                not_upgraded = (
                    f"the backup was restored but not upgraded (run `abathur-memory init --db "
                    f"{db_path}` once there is space)"
                )
                with disk_full.reported(db_path, not_upgraded):
                    runner.migrate(target)
                # The approximate index beside it described the replaced content: rebuilt
                # from the restored vectors, never carried over.
                ann_files.discard(db_path)
            finally:
                target.close()
        finally:
            source.close()
    return RestoreResult(src, db_path, previous)


def verify_header(path: Path) -> str | None:
    """None if ``path`` starts like a SQLite database (or is empty), else what it is not."""
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    if header and header != SQLITE_MAGIC:
        return "it is not a SQLite database"
    return None


def verify_database(path: Path, *, require_abathur: bool = False) -> str | None:
    """None if ``path`` is a healthy SQLite database, else what is wrong with it."""
    problem = verify_header(path)
    if problem or path.stat().st_size == 0:
        return problem or "it is empty"
    try:
        conn = driver.connect_plain(path)
    except driver.Error as exc:
        return f"it cannot be opened ({exc})"
    try:
        rows = [row[0] for row in conn.execute("PRAGMA integrity_check(10)")]
        if rows != ["ok"]:
            return "integrity_check failed: " + "; ".join(rows[:3])
        if require_abathur:
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "schema_migrations" not in tables and "memory_entries" not in tables:
                return "it is a SQLite database, but not an abathur-memory one"
    except driver.Error as exc:
        return f"it is damaged ({exc})"
    finally:
        conn.close()
    return None


def _existing_database(db_path: Path) -> Path:
    if not db_path.is_file():
        raise NotFound(f"no database at {db_path}")
    return db_path


def _snapshot(db_path: Path, target: Path) -> None:
    """Consistent single-file copy of a live database via the online backup API."""
    source = driver.connect(db_path, read_only=True)
    try:
        copy = driver.connect_plain(target)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            copy.close()
    finally:
        source.close()


def _private_copy(src: Path, tmp: Path) -> Path:
    """Copy (decompressing if gzip) ``src`` into ``tmp``, so checks never touch the original."""
    out = tmp / "restore.db"
    with src.open("rb") as fh:
        compressed = fh.read(2) == GZIP_MAGIC
    try:
        with gzip.open(src, "rb") if compressed else src.open("rb") as fh, out.open("wb") as dst:
            shutil.copyfileobj(fh, dst, 1024 * 1024)
    except (OSError, EOFError, zlib.error) as exc:
        if disk_full.is_disk_full(exc):
            raise  # writing the copy failed, not reading the backup
        kind = "gzip file" if compressed else "file"
        raise InvalidInput(f"refusing to restore {src}: cannot read the {kind} ({exc})") from None
    return out


def _prune(directory: Path, db_path: Path, keep_days: int, now: datetime) -> list[Path]:
    pattern = backup_name_pattern(db_path)
    cutoff = now - timedelta(days=keep_days)
    pruned = []
    for entry in sorted(directory.iterdir()):
        match = pattern.match(entry.name)
        if not match or not entry.is_file():
            continue
        taken = datetime.strptime(match[1], _STAMP).replace(tzinfo=UTC)
        if taken < cutoff:
            entry.unlink()
            pruned.append(entry)
    return pruned


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())
