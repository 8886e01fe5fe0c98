"""The records the stores return and the services, tools and commands pass on.

One model per thing stored, in the shape callers see it: JSON decoded, times in ISO 8601
with a ``Z``. Both storage backends build exactly these, so a tool answers the same on
SQLite and on PostgreSQL. Rendering is ``model_dump()``: there are no hand-written copies.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from abathur_memory.core.principal import Principal
from abathur_memory.core.replies import absent
from abathur_memory.core.values import JsonAny

MEMORY_TYPES = ("semantic", "episodic", "procedural")

M = TypeVar("M", bound=BaseModel)


def trusted(model: type[M], fields: dict[str, Any]) -> M:
    """``model`` built from fields that are already valid and complete: a row of our own
    CHECKed schema, or another validated model's fields.

    Why not ``model_construct``: it walks every field for aliases and defaults, 4.5 µs a
    memory, about half of what building a listed memory costs (a 1,000-entry
    ``memories.list``, bench/service.py). This sets the instance's state the way it does.
    The fields must be exactly the model's, in its order (pydantic writes JSON in the order
    of the instance's fields)."""
    if tuple(fields) != _field_names(model):
        raise TypeError(f"{model.__name__} takes {_field_names(model)}, not {tuple(fields)}")
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", fields)
    object.__setattr__(instance, "__pydantic_fields_set__", set(fields))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


@functools.cache
def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    if model.__pydantic_post_init__ or model.__pydantic_root_model__:
        raise TypeError(f"{model.__name__} needs model_construct")
    return tuple(model.__pydantic_fields__)


def truncated_marker() -> Any:
    """``truncated``: present only in listings that cut a long field (core/replies.py)."""
    return Field(
        default=None,
        exclude_if=absent,
        description="Fields cut in this listing: {field: full size in bytes}.",
    )


class MemoryRecord(BaseModel):
    """A memory as every reader shows it (get, history, listings, the memory:// resource
    and search hits): its value, and who wrote it when; the store's row id left out."""

    namespace: str
    key: str
    version: int
    value: JsonAny
    memory_type: str
    metadata: dict[str, Any]
    is_deleted: bool = Field(description="True only for an old version read after a delete.")
    created_by: str | None = Field(description="Who wrote this version.")
    updated_by: str | None = Field(description="Who last changed it (a delete, say).")
    created_at: str = Field(description="When this version was written.")
    updated_at: str
    truncated: dict[str, int] | None = truncated_marker()  # set in listings only
    valid_from: str | None = Field(
        default=None, exclude_if=absent, description="When its fact starts to hold."
    )
    valid_to: str | None = Field(
        default=None, exclude_if=absent, description="When its fact stops holding."
    )
    redacted_at: str | None = Field(
        default=None, exclude_if=absent, description="When its content was erased."
    )
    redacted_by: str | None = Field(default=None, exclude_if=absent)

    @classmethod
    def of(cls, entry: MemoryEntry) -> MemoryRecord:
        return trusted(cls, record_fields(entry))


class MemoryEntry(MemoryRecord):
    """A memory as the stores return it: the public record plus the store's row id."""

    model_config = ConfigDict(frozen=True)

    id: int


def record_fields(entry: MemoryEntry) -> dict[str, Any]:
    """The public record's fields of an already validated entry."""
    return {name: getattr(entry, name) for name in MemoryRecord.model_fields}


LINK_TYPES = ("supersedes", "contradicts", "duplicates", "derived_from", "related")


class MemoryLink(BaseModel):
    """A typed, directed link between two memories (or from a memory to the events of a
    session). Links are never memories: they are not searchable text."""

    model_config = ConfigDict(frozen=True)

    id: int
    link_type: str
    from_namespace: str
    from_key: str
    from_version: int = Field(description="The from memory's version when it was linked.")
    to_namespace: str | None = None
    to_key: str | None = None
    to_version: int | None = Field(
        default=None, description="The to memory's version when it was linked."
    )
    to_session: str | None = Field(default=None, exclude_if=absent)
    seq_start: int | None = Field(default=None, exclude_if=absent)
    seq_end: int | None = Field(default=None, exclude_if=absent)
    holds_until: str | None = Field(
        default=None,
        exclude_if=absent,
        description="supersedes: when the older memory stopped holding.",
    )
    reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = Field(
        default=None, exclude_if=absent, description="The consolidation run that made it."
    )
    created_by: str
    created_at: str
    removed_at: str | None = Field(default=None, exclude_if=absent)
    removed_by: str | None = Field(default=None, exclude_if=absent)


@dataclass(frozen=True)
class NewLink:
    """A link to write between the live versions of two memories."""

    link_type: str
    from_namespace: str
    from_key: str
    to_namespace: str
    to_key: str
    reason: str | None = None
    metadata_text: str = "{}"
    run_id: str | None = None


class ConsolidationRun(BaseModel):
    """One consolidation run: who, when, what it counted; an undo names the run it undid."""

    id: str
    prefix: str
    actor: str
    mode: str  # propose | apply | undo
    status: str  # running | done | failed
    started_at: str
    finished_at: str | None = None
    counts: dict[str, Any] = Field(default_factory=dict)
    undoes: str | None = None
    undone_by: str | None = None


@dataclass(frozen=True)
class StoredProposal:
    """A proposal as a run stored it; ``applied`` says what applying it wrote."""

    id: str
    kind: str
    confidence: float
    proposal: dict[str, Any]
    applied: dict[str, Any] | None = None


@dataclass(frozen=True)
class PreparedPut:
    """A put checked and encoded by the service: what a store writes."""

    namespace: str
    key: str
    value_text: str  # JSON
    memory_type: str
    metadata_text: str | None  # JSON object; None keeps the live version's metadata
    expected_version: int | None
    valid_from: datetime | None = None  # when the fact starts to hold in the world
    valid_to: datetime | None = None  # when it stops (exclusive)


@dataclass(frozen=True)
class PutResult:
    """What a put did. Cheap to build: batches return thousands."""

    namespace: str
    key: str
    version: int
    memory_type: str
    created: bool  # a new version was written
    unchanged: bool  # the value equalled the live version: nothing was written
    updated_at: str


@dataclass
class MemoryPage:
    entries: list[MemoryEntry] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True)
class ExpiredMemory:
    namespace: str
    key: str
    version: int


class SessionEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    event_type: str
    actor: str
    content: JsonAny
    state_delta: dict[str, Any] | None
    created_at: str
    truncated: dict[str, int] | None = truncated_marker()


class Session(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    app_name: str
    user_id: str
    project_id: str | None
    status: str
    state: dict[str, Any]
    metadata: dict[str, Any]
    last_seq: int = Field(description="Sequence number of the last event (0: none yet).")
    created_at: str
    last_update_time: str
    terminated_at: str | None
    archived_at: str | None
    truncated: dict[str, int] | None = truncated_marker()


class SessionWithEvents(Session):
    events: list[SessionEvent] = Field(default_factory=list)


@dataclass
class SessionPage:
    sessions: list[Session]
    next_cursor: str | None


@dataclass(frozen=True)
class SessionChange:
    """What a session update writes (decided by the service from the current session)."""

    status: str | None = None  # a new status
    state_text: str | None = None  # JSON object
    merge: bool = True  # merge state_text into the state (RFC 7396), or replace it
    stamp: str | None = None  # 'terminated_at' or 'archived_at' to set to now
    max_state_bytes: int | None = None  # the merged state must fit (checked before commit)


@dataclass(frozen=True)
class NewEvent:
    event_type: str
    actor: str
    content_text: str
    delta_text: str | None


class Task(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    prompt: str
    agent_type: str
    priority: int
    status: str
    input: dict[str, Any]
    result: JsonAny
    error: str | None
    retry_count: int
    max_retries: int
    timeout_seconds: int
    dependencies: list[str]
    parent_task_id: str | None
    session_id: str | None
    created_by: str | None
    claimed_by: str | None
    submitted_at: str
    started_at: str | None
    completed_at: str | None
    last_updated_at: str
    truncated: dict[str, int] | None = truncated_marker()


@dataclass(frozen=True)
class NewTask:
    id: str
    prompt: str
    agent_type: str
    priority: int
    input_text: str
    max_retries: int
    timeout_seconds: int
    created_by: str
    parent_task_id: str | None
    dependencies: list[str]
    session_id: str | None


@dataclass(frozen=True)
class TaskChange:
    """What a task update writes (decided by the service from the current task)."""

    status: str
    result_text: str | None = None
    error: str | None = None
    completed: bool = False  # set completed_at
    requeued: bool = False  # retry_count + 1, claimed_by and started_at cleared


@dataclass
class TaskPage:
    tasks: list[Task]
    next_cursor: str | None


class Checkpoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_id: str
    iteration: int
    state: JsonAny
    session_id: str | None
    created_at: str


class TokenInfo(BaseModel):
    id: str
    name: str
    user: str
    app: str
    project: str | None
    admin: bool
    created_at: str
    revoked_at: str | None

    @property
    def principal(self) -> Principal:
        return Principal(user=self.user, app=self.app, project=self.project, admin=self.admin)


@dataclass(frozen=True)
class Denial:
    """A denied operation, for the audit table."""

    actor: str
    action: str  # memory_denied | session_denied | task_denied | document_denied | ...
    attempted: str  # what was tried: read, write, search, create, list, ...
    target: str  # a namespace, a session or task id, a document path
    rule: str  # the rule that said no
    namespace: str | None = None  # memory namespace (for audit.memory_namespace)
    key: str | None = None
