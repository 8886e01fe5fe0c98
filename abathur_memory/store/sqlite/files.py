"""Which paths may become (or be opened as) a SQLite database, checked before any write."""

from __future__ import annotations

from pathlib import Path

from abathur_memory.errors import InvalidInput, NotFound, Unavailable
from abathur_memory.store.sqlite import migrate as runner


def check_database_path(path: Path, *, create: bool, create_dirs: bool = False) -> None:
    """Refuse paths that cannot be (or must not become) a database, with one clear sentence.

    Only commands that create a database may create one, and a missing directory is made
    only when asked (``create_dirs``): a mistyped ``--db`` must not silently become a new,
    empty database.
    """
    if path.is_dir():
        raise InvalidInput(f"{path} is a directory, not a database file")
    if path.exists():
        check_existing(path)
        return
    if not create:
        raise NotFound(f"no database at {path} (create one with `abathur-memory init --db {path}`)")
    if not path.parent.is_dir():
        if not create_dirs:
            raise NotFound(
                f"the directory {path.parent} does not exist: create it first, or use "
                f"`abathur-memory init --db {path} --create-dirs`"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Unavailable(
                f"cannot create the directory {path.parent}: {exc.strerror}"
            ) from None


def check_existing(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            header = fh.read(16)
    except OSError as exc:
        raise Unavailable(f"cannot open {path}: {exc.strerror}") from None
    if header and header != b"SQLite format 3\x00":
        raise InvalidInput(f"cannot open {path}: it is not a SQLite database")
    if header:
        runner.check_existing_file(path)
