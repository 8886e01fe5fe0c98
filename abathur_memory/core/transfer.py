"""The records of export and import, shared by the transfer service and both stores.

An import reads what the database already holds of a file's records (``Held``), decides
what to write from it (transfer/merge.py, pure), and the store writes that (``Writes``) in
the same transaction. Times are the records' ISO 8601 text ('2026-01-02T03:04:05.678Z').
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from abathur_memory.core.records import (
    Checkpoint,
    MemoryEntry,
    MemoryLink,
    Session,
    SessionEvent,
    Task,
)

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
class ImportedLink:
    """A link between memories (or from a memory to events of a session) to insert as it
    was: its ends' versions, times and actors as the file gives them (the database gives
    it a new row id)."""

    link_type: str
    from_namespace: str
    from_key: str
    from_version: int
    to_namespace: str | None
    to_key: str | None
    to_version: int | None
    to_session: str | None
    seq_start: int | None
    seq_end: int | None
    holds_until: str | None
    reason: str | None
    metadata_text: str  # JSON object
    run_id: str | None
    created_by: str
    created_at: str
    removed_at: str | None
    removed_by: str | None

    def renamed(self, from_namespace: str, to_namespace: str | None) -> ImportedLink:
        return ImportedLink(
            **{**self.__dict__, "from_namespace": from_namespace, "to_namespace": to_namespace}
        )


@dataclass(frozen=True)
class LinkRemoval:
    """An active link here that the file knows removed (removal only spreads)."""

    link_id: int
    removed_at: str
    removed_by: str | None


@dataclass(frozen=True)
class Wanted:
    """What to read of the database for one file: the keys, sessions, tasks and
    checkpoints it names (references included)."""

    keys: tuple[tuple[str, str], ...] = ()
    session_ids: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    checkpoints: tuple[tuple[str, int], ...] = ()
    link_keys: tuple[tuple[str, str], ...] = ()  # the links from these memories

    @property
    def empty(self) -> bool:
        return not (
            self.keys or self.session_ids or self.task_ids or self.checkpoints or self.link_keys
        )


@dataclass
class Held:
    """What the database holds of the wanted records."""

    versions: dict[tuple[str, str], list[MemoryEntry]] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    events: dict[str, list[SessionEvent]] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    checkpoints: dict[tuple[str, int], Checkpoint] = field(default_factory=dict)
    links: list[MemoryLink] = field(default_factory=list)  # from the link_keys, by id


@dataclass
class Writes:
    """What an import writes, in this order: sessions, events, memory versions and
    deletions (each with its audit row), links and link removals (counted in the summary),
    tasks (parents first), checkpoints, and the summary audit row."""

    sessions: list[Session] = field(default_factory=list)  # new rows, every column as given
    session_updates: list[Session] = field(default_factory=list)  # rows overwritten
    events: list[tuple[str, SessionEvent]] = field(default_factory=list)
    versions: list[NewVersion] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    links: list[ImportedLink] = field(default_factory=list)  # inserted in this order
    link_removals: list[LinkRemoval] = field(default_factory=list)
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
            or self.links
            or self.link_removals
            or self.tasks
            or self.task_updates
            or self.checkpoints
        )


# What the store calls inside the import's transaction, with what it read: the writes, or
# an error (which rolls the transaction back).
Decide = Callable[[Held], Writes]
