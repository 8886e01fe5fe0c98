"""What the operations room (ops/, cli/) asks of a backend, one job per protocol.

The services reach a backend through store/protocols.py; the commands that work on a whole
database (init, doctor, maintain, backup, restore, salvage, migrate) reach it through these,
implemented in each backend's package (store/sqlite/operations.py,
store/postgres/operations.py) and picked by store/open.py's ``open_operations``. So ops/ and
cli/ hold no SQL and import no backend: a third backend implements these and nothing there
changes. The records they return live here too, the same for every backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from abathur_memory.store.copy_tables import Table

# -- records ------------------------------------------------------------------------------


@dataclass
class Check:
    """One line of the doctor's report: ``ok`` false fails it (exit 1); a ``warning`` is
    worth acting on but is not damage."""

    name: str
    ok: bool
    detail: str
    warning: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def copy_state_check(state: str | None) -> Check:
    """A database `migrate` is still filling, or failed to fill, is refused by the server."""
    if state is None:
        return Check("copy state", True, "not a copy made by `migrate`")
    if state == "complete":
        return Check("copy state", True, "a complete, validated copy")
    return Check(
        "copy state",
        False,
        f"an unfinished copy made by `abathur-memory migrate` ({state}): servers refuse it; "
        "run the same migrate command again to finish it",
    )


class DoctorReport(Protocol):
    """What the doctor found, what it repaired, and the documents to re-index."""

    checks: list[Check]
    read_only: bool
    repaired: list[str]
    reindex: set[int]  # documents the caller should re-index

    @property
    def ok(self) -> bool: ...


@dataclass
class Step:
    """One step of `maintain`: what it did (or, in a dry run, would do)."""

    name: str
    done: bool
    detail: str


@dataclass
class Initialized:
    database: str  # as it may be shown
    action: str  # created | upgraded | up to date
    schema_version: int


@dataclass
class BackupResult:
    path: Path
    size: int
    pruned: list[Path] = field(default_factory=list)


@dataclass
class RestoreResult:
    restored_from: Path
    database: Path
    previous_copy: Path | None


@dataclass
class TableSalvage:
    copied: int = 0
    read_errors: int = 0
    detached: int = 0
    dropped: int = 0


@dataclass
class SalvageResult:
    output: Path
    tables: dict[str, TableSalvage] = field(default_factory=dict)
    reindex_documents: int = 0

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables.values())

    @property
    def read_errors(self) -> int:
        return sum(t.read_errors for t in self.tables.values())


Progress = Callable[[str, int, int], None]  # (phase or table, rows done, rows total)


# -- protocols ----------------------------------------------------------------------------


class Endpoint(Protocol):
    """A database as `migrate` sees it: tables of canonical rows (copy_tables.py) that can
    be counted, read in key order from a position, and written a batch per transaction with
    the copy's progress in the same transaction (so an interrupted copy resumes)."""

    label: str
    kind: str

    def begin_snapshot(self) -> None: ...
    def end_snapshot(self) -> None: ...
    def spaces(self) -> list[tuple[int, int]]: ...
    def count(self, table: Table) -> int: ...
    def read(
        self, table: Table, after: Sequence[Any] | None, limit: int
    ) -> list[tuple[Any, ...]]: ...
    def write(self, table: Table, rows: list[tuple[Any, ...]], progress: str) -> None: ...
    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def holds_user_data(self) -> bool: ...
    def clear(self) -> None: ...
    def create_space(self, space_id: int, dim: int) -> None: ...
    def finish_tasks(self, parents: list[tuple[str, str]]) -> None: ...
    def finish(self, progress: Progress | None = None) -> None:
        """Derived state rebuilt after the copy; ``progress`` hears each long step."""
        ...

    def close(self) -> None: ...


class Setup(Protocol):
    def initialize(self, *, create_dirs: bool = False) -> Initialized:
        """Create the database, or upgrade an older one in place."""
        ...


class Doctor(Protocol):
    def examine(self, *, repair: bool = False) -> DoctorReport:
        """Check the database without creating it; ``repair`` first fixes what can be
        fixed in place (derived data only)."""
        ...


class Maintenance(Protocol):
    def maintain(self, *, dry_run: bool = False) -> list[Step]:
        """Statistics, free space (and, for a file, its WAL); ``dry_run`` only reports."""
        ...


class FileCopies(Protocol):
    """Copies of a database that is one file: backup, verified restore, salvage. A server
    backend has none (its own tools back it up and recover it)."""

    def backup(
        self, dest: Path, *, compress: bool = False, keep_days: int | None = None
    ) -> BackupResult: ...
    def restore(self, src: Path) -> RestoreResult: ...
    def salvage(self, output: Path) -> SalvageResult: ...


class Copying(Protocol):
    """One side of `migrate`."""

    @property
    def label(self) -> str:
        """The database as it may be shown (a URL without its password)."""
        ...

    def endpoint(self, *, target: bool) -> Endpoint:
        """The database opened as the copy's source, or (``target``) made ready to receive
        it."""
        ...

    def target_state(self, state_key: str) -> str:
        """What a copy would find here, without writing (a dry run)."""
        ...

    def full_disk_reported(self) -> contextlib.AbstractContextManager[None]:
        """Around a copy into this database: a full disk said in one line."""
        ...


class Operations(Setup, Doctor, Maintenance, Copying, Protocol):
    """Every operation on a whole database; ``files`` is None where the database is not a
    file this process can copy."""

    @property
    def files(self) -> FileCopies | None: ...
