"""The one place that opens SQLite connections.

Every connection is made with ``sqlean.py``: a DB-API 2 drop-in (so aiosqlite can wrap it)
shipping SQLite 3.50 (3.49 on Windows, the newest with Windows wheels) with FTS5 and JSONB on
every platform, where the stdlib ``sqlite3`` of many Pythons is older. The seed PRAGMAs are
applied on every connection. No extension is loaded: vectors live in plain tables, searched
by sign codes in numpy (docs/storage.md measured sqlite-vec's vec0 slower; it was dropped).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import sqlean as sqlite

from abathur_memory.errors import Unavailable

log = logging.getLogger(__name__)

# Re-exported so the rest of the code never imports the driver module directly.
Connection = sqlite.Connection
Row = sqlite.Row
Error = sqlite.Error
DatabaseError = sqlite.DatabaseError
OperationalError = sqlite.OperationalError
IntegrityError = sqlite.IntegrityError
complete_statement = sqlite.complete_statement
sqlite_version = sqlite.sqlite_version

MIN_SQLITE_VERSION = (3, 45, 0)  # JSONB (jsonb(), the doctor's check) arrived in 3.45

# Seed 000 §2.1, applied on every connection (foreign_keys and busy_timeout are per connection).
SEED_PRAGMAS: dict[str, Any] = {
    "journal_mode": "wal",
    "synchronous": "NORMAL",
    "foreign_keys": "ON",
    "busy_timeout": 5000,
    "wal_autocheckpoint": 1000,
}


def sqlite_version_info() -> tuple[int, ...]:
    return tuple(int(part) for part in sqlite.sqlite_version.split("."))


def writable(path: str | Path) -> bool:
    """Whether this process may write the database file and create its -wal/-shm beside it."""
    file = Path(path)
    return os.access(file.parent, os.W_OK) and (not file.exists() or os.access(file, os.W_OK))


def connect(
    path: str | Path,
    *,
    busy_timeout_ms: int = 5000,
    read_only: bool = False,
    check_same_thread: bool = False,
    file_read_only: bool = False,
) -> sqlite.Connection:
    """Open ``path`` with the seed PRAGMAs set.

    The connection is in autocommit mode (``isolation_level=None``): callers open their own
    transactions (``BEGIN IMMEDIATE`` for writes) so that no statement starts one implicitly.
    ``read_only`` connections additionally refuse writes (``PRAGMA query_only``).
    ``file_read_only`` opens a file this process cannot write (a read-only copy or mount):
    SQLite's ``mode=ro``, and no PRAGMA that would write.
    """
    if sqlite_version_info() < MIN_SQLITE_VERSION:  # pragma: no cover - guarded by the pin
        raise Unavailable(f"SQLite {sqlite.sqlite_version} is too old; 3.45 or newer is needed")
    if file_read_only:
        conn = _connect_read_only_file(Path(path), busy_timeout_ms, check_same_thread)
    else:
        conn = sqlite.connect(
            str(path),
            isolation_level=None,
            check_same_thread=check_same_thread,
            timeout=busy_timeout_ms / 1000,
        )
    try:
        conn.row_factory = sqlite.Row
        if file_read_only:  # the per-connection settings only (the WAL switch would write)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute(f"PRAGMA synchronous = {SEED_PRAGMAS['synchronous']}")
            conn.execute(f"PRAGMA foreign_keys = {SEED_PRAGMAS['foreign_keys']}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {SEED_PRAGMAS['wal_autocheckpoint']}")
        else:
            apply_pragmas(conn, busy_timeout_ms=busy_timeout_ms)
        if read_only or file_read_only:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_read_only_file(
    path: Path, busy_timeout_ms: int, check_same_thread: bool
) -> sqlite.Connection:
    """``mode=ro``; a WAL file in a folder where no -shm can be made needs ``immutable``,
    which is safe only while no -wal file holds changes (``immutable`` would not read them)."""
    uri = path.resolve().as_uri()
    last: Exception | None = None
    for options in ("mode=ro", "mode=ro&immutable=1"):
        if "immutable" in options and _pending_wal(path):
            raise Unavailable(
                f"cannot read {path}: the folder {path.parent} is not writable, and "
                f"{path.name}-wal holds changes not yet in the database; SQLite in WAL mode "
                f"needs to create {path.name}-shm beside it to read them (open it once where "
                "the folder is writable, or copy the database with its -wal file elsewhere)"
            )
        conn = sqlite.connect(
            f"{uri}?{options}",
            uri=True,
            isolation_level=None,
            check_same_thread=check_same_thread,
            timeout=busy_timeout_ms / 1000,
        )
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite.OperationalError as exc:
            conn.close()
            last = exc
    assert last is not None
    raise last


def _pending_wal(path: Path) -> bool:
    try:
        return Path(f"{path}-wal").stat().st_size > 0
    except OSError:
        return False


def file_is_wal(path: str | Path) -> bool:
    """Whether the file's header says WAL mode (bytes 18-19 are 2): what a connection opened
    ``immutable`` cannot report, since it then never uses the WAL."""
    try:
        with Path(path).open("rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18] == 2 and header[19] == 2


def connect_plain(path: str | Path, *, uri: bool = False) -> sqlite.Connection:
    """A bare connection (no PRAGMAs) for files that may be damaged or foreign: verifying
    backups, salvaging, writing backup copies."""
    conn = sqlite.connect(str(path), isolation_level=None, uri=uri)
    conn.row_factory = sqlite.Row
    return conn


def apply_pragmas(conn: sqlite.Connection, *, busy_timeout_ms: int = 5000) -> None:
    """Apply the seed PRAGMAs. busy_timeout goes first so the WAL switch can wait for a lock."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    mode = _switch_to_wal(conn, busy_timeout_ms)
    if mode != "wal" and _db_file(conn):  # in-memory databases cannot use WAL
        log.warning("could not switch %s to WAL (journal_mode=%s)", _db_file(conn), mode)
    conn.execute(f"PRAGMA synchronous = {SEED_PRAGMAS['synchronous']}")
    conn.execute(f"PRAGMA foreign_keys = {SEED_PRAGMAS['foreign_keys']}")
    conn.execute(f"PRAGMA wal_autocheckpoint = {SEED_PRAGMAS['wal_autocheckpoint']}")


def _switch_to_wal(conn: sqlite.Connection, busy_timeout_ms: int) -> str:
    """Set WAL mode, retrying while another process does the same to a new file.

    The switch needs an exclusive lock and SQLite does not run the busy handler for it in
    every case, so two processes creating one file at once would otherwise see "locked".
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode == "wal":
                return mode
            return conn.execute("PRAGMA journal_mode = wal").fetchone()[0]
        except sqlite.OperationalError as exc:
            if not is_busy_error(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005 + random.random() * 0.02)


def _db_file(conn: sqlite.Connection) -> str:
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def extension_versions(conn: sqlite.Connection) -> dict[str, str]:
    """Versions worth reporting: SQLite itself and the driver that ships it."""
    return {
        "sqlite": conn.execute("SELECT sqlite_version()").fetchone()[0],
        "driver": f"sqlean.py {importlib.metadata.version('sqlean.py')}",
    }


def is_busy_error(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED, which are worth retrying."""
    if not isinstance(exc, sqlite.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (+ extended codes)
    message = str(exc).lower()
    return "locked" in message or "busy" in message
