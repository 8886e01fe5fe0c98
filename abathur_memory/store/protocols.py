"""The storage interface the services call, grouped by what is stored.

Two implementations, ``store.sqlite`` and ``store.postgres``, own their SQL and their
numbered migrations; nothing above this package writes SQL. Every method is one
transaction (or one read snapshot) and raises the project's typed errors
(``abathur_memory.errors``), never a driver's.

Policy stays with the services: a store never decides who may do what. Where a decision
needs the current row inside the transaction (a status transition, a compare-and-set), the
service passes a ``decide`` function of the current record that returns the change or
raises; the store calls it between reading the locked row and writing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from abathur_memory.core.principal import Principal
from abathur_memory.core.records import (
    Checkpoint,
    Denial,
    ExpiredMemory,
    MemoryEntry,
    NewEvent,
    NewTask,
    PreparedPut,
    PutResult,
    Session,
    SessionChange,
    SessionEvent,
    SessionWithEvents,
    Task,
    TaskChange,
    TokenInfo,
)


class MemoryStore(Protocol):
    """Versions of (namespace, key) with their audit rows."""

    async def put_many(self, puts: Sequence[PreparedPut], actor: str) -> list[PutResult]:
        """All puts in one transaction, each against the newest version (earlier puts of
        the batch included): a changed value is a new version with its audit row, an equal
        one writes nothing. A failed compare-and-set raises Conflict and writes nothing."""
        ...

    async def latest(self, namespace: str, key: str) -> MemoryEntry | None:
        """The latest live version."""
        ...

    async def version(self, namespace: str, key: str, version: int) -> MemoryEntry | None: ...

    async def as_of(self, namespace: str, key: str, at: datetime) -> MemoryEntry | None:
        """The version live at ``at`` (None if it did not exist or was deleted then)."""
        ...

    async def history(self, namespace: str, key: str) -> list[MemoryEntry]: ...

    async def list_prefix(
        self, prefix: str, memory_type: str | None, after: tuple[str, str], limit: int
    ) -> list[MemoryEntry]:
        """Latest live entries under ``prefix`` on ':' boundaries (a bare scope lists the
        scope), by (namespace, key), after the cursor position ``after``."""
        ...

    async def list_readable(
        self, principal: Principal, memory_type: str | None, after: tuple[str, str], limit: int
    ) -> list[MemoryEntry]:
        """Like list_prefix over every namespace ``principal`` may read."""
        ...

    async def delete(
        self, namespace: str, key: str, expected_version: int | None, actor: str
    ) -> MemoryEntry:
        """Soft-delete every version; returns the version that was live (NotFound,
        Conflict)."""
        ...

    async def restore(self, namespace: str, key: str, actor: str) -> PutResult:
        """The last value of a deleted key back as a new version (NotFound, Conflict)."""
        ...

    async def expired_episodic(self, cutoff: datetime, limit: int | None) -> list[ExpiredMemory]:
        """Live episodic memories not updated since ``cutoff``, oldest first."""
        ...

    async def expire_episodic(
        self, cutoff: datetime, actor: str, limit: int
    ) -> list[ExpiredMemory]:
        """Soft-delete up to ``limit`` of them (audited as ``actor``); returns them."""
        ...


class AuditStore(Protocol):
    async def write_denials(
        self, batch: dict[Denial, int], recent: dict[Denial, int]
    ) -> dict[Denial, int]:
        """One audit row per denial with its count, or the count added to the recent row
        named in ``recent``; returns the row id of each."""
        ...

    async def count(self) -> int: ...


class SessionStore(Protocol):
    async def create(
        self,
        session_id: str,
        app_name: str,
        user_id: str,
        project_id: str | None,
        state_text: str,
        metadata_text: str,
    ) -> Session:
        """Conflict if the id exists."""
        ...

    async def owner(self, session_id: str) -> tuple[str, str] | None:
        """(user_id, app_name) of a session (owners never change)."""
        ...

    async def get(
        self, session_id: str, events_after: int, events_limit: int
    ) -> SessionWithEvents | None:
        """The session and a page of its events, in one snapshot (``events_after=-1``: the
        last ``events_limit`` events)."""
        ...

    async def events(
        self, session_id: str, start_seq: int, end_seq: int | None, limit: int
    ) -> list[SessionEvent]: ...

    async def append(
        self,
        session_id: str,
        event: NewEvent,
        check: Callable[[Session], None],
        max_state_bytes: int,
    ) -> tuple[SessionEvent, Session]:
        """Append under the session row's lock: ``check`` sees the current session and
        raises to refuse; seq is last_seq + 1; the delta is merged into the state."""
        ...

    async def change(
        self, session_id: str, decide: Callable[[Session], SessionChange | None]
    ) -> Session:
        """Apply what ``decide`` returns for the locked current session (None: no change)."""
        ...

    async def page(
        self,
        *,
        user_id: str | None,
        app_name: str | None,
        status: str | None,
        project_id: str | None,
        before: tuple[str, str],
        limit: int,
    ) -> tuple[list[Session], tuple[str, str] | None]:
        """Newest first; returns the page and the cursor position after its last row."""
        ...

    async def terminated_before(self, cutoff: datetime, limit: int | None) -> list[str]: ...

    async def archive_terminated(self, cutoff: datetime, limit: int) -> list[str]: ...


class TaskStore(Protocol):
    async def create(self, task: NewTask) -> Task: ...

    async def owners(self, task_ids: Sequence[str]) -> dict[str, str | None]:
        """created_by of each task that exists (owners never change)."""
        ...

    async def get(self, task_id: str) -> Task | None: ...

    async def change(self, task_id: str, decide: Callable[[Task], TaskChange | None]) -> Task:
        """Apply what ``decide`` returns for the locked current task (None: heartbeat)."""
        ...

    async def claim(self, agent_type: str | None, owner: str | None, claimant: str) -> Task | None:
        """Requeue timed-out tasks, then take the most urgent ready one, atomically (two
        claimers never get the same task, across processes and hosts)."""
        ...

    async def page(
        self,
        *,
        owner: str | None,
        status: str | None,
        agent_type: str | None,
        session_id: str | None,
        before: tuple[str, str],
        limit: int,
    ) -> tuple[list[Task], tuple[str, str] | None]: ...


class CheckpointStore(Protocol):
    async def save(
        self, task_id: str, iteration: int, state_text: str, session_id: str | None
    ) -> Checkpoint:
        """Save or overwrite; the task's own session when ``session_id`` is None."""
        ...

    async def load(self, task_id: str, iteration: int | None) -> Checkpoint | None: ...

    async def iterations(self, task_id: str) -> list[int]: ...


class TokenStore(Protocol):
    async def create(
        self, token_id: str, name: str, token_hash: str, principal: Principal
    ) -> TokenInfo:
        """Conflict if a live token has that name."""
        ...

    async def all(self, include_revoked: bool) -> list[TokenInfo]: ...

    async def revoke(self, id_or_name: str) -> TokenInfo | None: ...

    async def by_hash(self, token_hash: str) -> TokenInfo | None:
        """The live token with that hash."""
        ...


class Store(Protocol):
    """One open database: the groups above, and what the runtime needs to manage it."""

    kind: str  # "sqlite" | "postgres"
    location: str  # a file path, or a URL without its password

    # read-only members, so that an implementation may hold its own subtypes
    @property
    def memories(self) -> MemoryStore: ...
    @property
    def audit(self) -> AuditStore: ...
    @property
    def sessions(self) -> SessionStore: ...
    @property
    def tasks(self) -> TaskStore: ...
    @property
    def checkpoints(self) -> CheckpointStore: ...
    @property
    def tokens(self) -> TokenStore: ...

    async def migrate(self) -> list[int]:
        """Bring the schema up to date; returns the migrations applied."""
        ...

    async def close(self) -> None: ...
