"""Records for looking at what is stored (the console, ``stats``): namespaces with their
counts, audit rows, indexed files, and the facts of a database. Stores build them; the
services decide who may see which."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


class NamespaceCount(BaseModel):
    """A namespace and how many live keys it holds."""

    namespace: str
    keys: int


class AuditRecord(BaseModel):
    """One row of the audit table, as the console shows it."""

    id: int
    timestamp: str
    actor: str | None
    action: str
    result: str | None
    operation: str | None
    namespace: str | None
    entry_id: int | None
    data: dict[str, Any] | None


@dataclass(frozen=True)
class AuditQuery:
    """Which audit rows to read, newest first. ``entry_ids`` with ``namespace`` and ``key``
    is one memory's trail: its versions' rows and the denials naming it."""

    actor: str | None = None
    action: str | None = None
    denied: bool = False
    namespace: str | None = None
    key: str | None = None
    entry_ids: tuple[int, ...] = ()


class DocumentFile(BaseModel):
    """One indexed file: its status, when it was last synced, and why it failed."""

    id: int
    path: str
    title: str
    status: str
    size_bytes: int | None
    last_synced_at: str | None
    updated_at: str
    error: str | None


class DatabaseFacts(BaseModel):
    """Counts, sizes and index lag of one database (``None``: this backend cannot tell)."""

    backend: str
    location: str
    memories: int
    memory_versions: int
    sessions: int
    session_events: int
    tasks: int
    documents: int
    audit_rows: int
    size_bytes: int | None
    wal_bytes: int | None
    memory_changes_behind: int
