"""What a file to import holds once read: records that know the line they came from.

Every reader (our JSONL, the MCP memory server's JSONL, mem0, a ``.claude/`` folder) turns
one file into one :class:`Unit`: the unit is written whole or not at all. A record that
cannot be read becomes a ``bad`` :class:`Problem` with its line; the merge adds
``refused`` and ``conflict`` problems against the database.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from abathur_memory.core import timestamps
from abathur_memory.core.records import Checkpoint, Session, SessionEvent, Task
from abathur_memory.core.transfer import ImportedLink
from abathur_memory.errors import InvalidInput

_RECORD_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")
KINDS = ("memory", "link", "session", "event", "task", "checkpoint", "root")


@dataclass(frozen=True)
class Where:
    """A record's place: a file and a 1-based line (0: the file as a whole; for a JSON
    document, ``item`` is the element's number instead)."""

    file: str
    line: int = 0
    item: int | None = None

    def __str__(self) -> str:
        if self.item is not None:
            return f"{self.file}: item {self.item}"
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Problem:
    where: Where
    kind: str  # 'bad' | 'refused' | 'conflict'
    record: str  # the kind of record (KINDS), or 'file'
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class VersionRecord:
    """A memory version. ``version`` None: a record of a format without versions, written
    like a put (a new version when its content differs from the live one)."""

    where: Where
    namespace: str
    key: str
    version: int | None
    value_text: str  # JSON
    memory_type: str
    metadata_text: str  # JSON object
    is_deleted: bool = False
    created_by: str | None = None  # None: the importing principal
    updated_by: str | None = None
    created_at: str | None = None  # None: the import's time
    updated_at: str | None = None

    def renamed(self, namespace: str) -> VersionRecord:
        return VersionRecord(**{**self.__dict__, "namespace": namespace})


@dataclass(frozen=True)
class SessionRecord:
    where: Where
    session: Session
    events: list[tuple[Where, SessionEvent]] = field(default_factory=list)


@dataclass(frozen=True)
class TaskRecord:
    where: Where
    task: Task


@dataclass(frozen=True)
class CheckpointRecord:
    where: Where
    checkpoint: Checkpoint


@dataclass(frozen=True)
class RootRecord:
    where: Where
    name: str
    path: str
    excludes: tuple[str, ...]
    owner: str | None
    project: str | None
    visibility: str


@dataclass(frozen=True)
class LinkRecord:
    where: Where
    link: ImportedLink


@dataclass
class Unit:
    """One file to import, all or nothing."""

    name: str
    format: str
    versions: list[VersionRecord] = field(default_factory=list)
    sessions: list[SessionRecord] = field(default_factory=list)
    tasks: list[TaskRecord] = field(default_factory=list)
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    roots: list[RootRecord] = field(default_factory=list)
    links: list[LinkRecord] = field(default_factory=list)
    bad: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digests: dict[str, Digest] = field(default_factory=dict)  # of the records read, by kind
    expected: dict[str, tuple[int, str]] | None = None  # (count, checksum) by kind, a footer's

    def digest(self, kind: str) -> Digest:
        return self.digests.setdefault(kind, Digest())

    def fail(self, where: Where, message: str, record: str = "file") -> None:
        self.bad.append(Problem(where, "bad", record, message))

    def records(self, kind: str) -> int:
        """How many records of ``kind`` were read (bad ones included)."""
        return self.digests[kind].count if kind in self.digests else 0


class Digest:
    """A count and a SHA-256 over the canonical JSON of records, in file order: what an
    export's footer holds per kind, and what an import recomputes."""

    def __init__(self) -> None:
        self.count = 0
        self._sha = hashlib.sha256()

    def add(self, record: dict[str, Any]) -> None:
        self.count += 1
        self._sha.update(canonical_line(record).encode("utf-8"))

    @property
    def checksum(self) -> str:
        return "sha256:" + self._sha.hexdigest()


def canonical_line(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def iso(value: Any, *, what: str) -> str:
    """A time (ISO 8601 text, or seconds since the epoch) as the records hold it:
    UTC, milliseconds, 'Z'."""
    if isinstance(value, str) and _RECORD_TIME.match(value):
        return value  # already in the records' form (what every export writes)
    if isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        moment = timestamps.parse_user_time(value)
    else:
        raise InvalidInput(f"{what} must be an ISO 8601 time")
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def iso_or_none(value: Any, *, what: str) -> str | None:
    return None if value is None else iso(value, what=what)
