"""The records of export and import, shared by the transfer service and both stores.

An import reads what the database already holds of a file's records (``Held``), decides
what to write from it (transfer/merge.py, pure), and the store writes that (``Writes``) in
the same transaction. Times are the records' ISO 8601 text ('2026-01-02T03:04:05.678Z').
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from abathur_memory.core.records import Checkpoint, MemoryEntry, Session, SessionEvent, Task

# The audit row that sums up one imported file (memory_operation_type NULL: the versions
# have their own rows).
IMPORT_ACTION = "import"
MEMORY_IMPORT_ACTION = "memory_import"


@dataclass(frozen=True)
class NewVersion:
    """A memory version to insert, as it was (the database gives it a new row id)."""

    namespace: str
    key: str
    version: int
    value_text: str  # JSON
    memory_type: str
    metadata_text: str  # JSON object
    is_deleted: bool
    created_by: str | None
    updated_by: str | None
    created_at: str
    updated_at: str
    operation: str  # the audit row's: 'create' (the key's first version here) or 'update'


@dataclass(frozen=True)
class Deletion:
    """A version the file knows deleted and the database still holds live."""

    namespace: str
    key: str
    version: int
    updated_at: str
    updated_by: str | None


@dataclass(frozen=True)
class Wanted:
    """What to read of the database for one file: the keys, sessions, tasks and
    checkpoints it names (references included)."""

    keys: tuple[tuple[str, str], ...] = ()
    session_ids: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    checkpoints: tuple[tuple[str, int], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.keys or self.session_ids or self.task_ids or self.checkpoints)


@dataclass
class Held:
    """What the database holds of the wanted records."""

    versions: dict[tuple[str, str], list[MemoryEntry]] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    events: dict[str, list[SessionEvent]] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    checkpoints: dict[tuple[str, int], Checkpoint] = field(default_factory=dict)


@dataclass
class Writes:
    """What an import writes, in this order: sessions, events, memory versions and
    deletions (each with its audit row), tasks (parents first), checkpoints, and the
    summary audit row."""

    sessions: list[Session] = field(default_factory=list)  # new rows, every column as given
    session_updates: list[Session] = field(default_factory=list)  # rows overwritten
    events: list[tuple[str, SessionEvent]] = field(default_factory=list)
    versions: list[NewVersion] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    task_updates: list[Task] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)  # inserted or overwritten
    summary: dict[str, Any] = field(default_factory=dict)  # the import's audit row

    @property
    def empty(self) -> bool:
        return not (
            self.sessions
            or self.session_updates
            or self.events
            or self.versions
            or self.deletions
            or self.tasks
            or self.task_updates
            or self.checkpoints
        )


# What the store calls inside the import's transaction, with what it read: the writes, or
# an error (which rolls the transaction back).
Decide = Callable[[Held], Writes]
