"""A full disk while writing a copy (backup, restore, migrate), said in one line.

A full disk shows up as ``OSError(ENOSPC)`` from Python's own writes and as SQLITE_FULL
("database or disk is full") from SQLite's. Either way the user gets one ``error:`` line
naming the file and what became of the half-written copy, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator
from pathlib import Path

from abathur_memory.errors import Unavailable
from abathur_memory.store.sqlite import driver

_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SQLITE_FULL = 13


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    if isinstance(exc, driver.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return bool(code & 0xFF == _SQLITE_FULL)
        return "disk is full" in str(exc).lower()
    return False


@contextlib.contextmanager
def reported(
    target: Path, outcome: str, cleanup: Callable[[], None] | None = None
) -> Iterator[None]:
    """Turn a full disk inside the block into ``Unavailable``: "no space left on device
    writing <target>; <outcome>". ``cleanup`` runs first (removing what was half written)."""
    try:
        yield
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        if cleanup is not None:
            cleanup()
        raise Unavailable(f"no space left on device writing {target}; {outcome}") from None


def remove_database_files(path: Path) -> None:
    """Remove a database file and its -wal, -shm and -journal companions (those present)."""
    for name in (path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal"))):
        with contextlib.suppress(FileNotFoundError):
            name.unlink()
