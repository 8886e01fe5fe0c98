"""abathur-memory's own JSONL, format version 1 (docs/import-export.md).

One JSON object per line. The first line is the header (``{"kind": "header", "format":
"abathur-memory", "version": 1, ...}``), the last the footer, which holds the count and a
SHA-256 of the records of each kind, so a file cut short or edited is noticed. Between them:
``root``, ``memory`` (one per version, without the row id), ``session`` each followed by
its ``event`` lines, ``task`` and ``checkpoint`` records, each with the fields the MCP tools
return, and ``link`` records (a link between two memories of the file, or from a memory to
events of a session of the file, removed ones included), oldest first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from abathur_memory.core import values
from abathur_memory.core.documents import Root
from abathur_memory.core.records import (
    LINK_TYPES,
    Checkpoint,
    MemoryEntry,
    MemoryLink,
    Session,
    SessionEvent,
    Task,
)
from abathur_memory.core.transfer import ImportedLink
from abathur_memory.errors import AbathurError, InvalidInput
from abathur_memory.memory import sessions as session_rules
from abathur_memory.memory import tasks as task_rules
from abathur_memory.memory.links import MAX_REASON_CHARS
from abathur_memory.memory.namespaces import clean
from abathur_memory.transfer.records import (
    CheckpointRecord,
    Digest,
    LinkRecord,
    RootRecord,
    SessionRecord,
    TaskRecord,
    Unit,
    VersionRecord,
    Where,
    iso,
    iso_or_none,
)

FORMAT = "abathur-memory"
VERSION = 1

Progress = Callable[[int], None]  # bytes read so far


# -- writing ------------------------------------------------------------------------------


def header(
    *,
    exported_by: str,
    source: str,
    with_history: bool,
    prefixes: list[str] | None,
    exported_at: str,
    version: str,
) -> dict[str, Any]:
    return {
        "kind": "header",
        "format": FORMAT,
        "version": VERSION,
        "exported_at": exported_at,
        "exported_by": exported_by,
        "source": source,
        "with_history": with_history,
        "prefixes": prefixes,
        "abathur_memory": version,
    }


def memory_record(entry: MemoryEntry) -> dict[str, Any]:
    return {"kind": "memory", **entry.model_dump(exclude={"id"})}


def session_record(session: Session) -> dict[str, Any]:
    return {"kind": "session", **session.model_dump(exclude={"events"})}


def event_record(session_id: str, event: SessionEvent) -> dict[str, Any]:
    return {"kind": "event", "session_id": session_id, **event.model_dump()}


def task_record(task: Task) -> dict[str, Any]:
    return {"kind": "task", **task.model_dump()}


def checkpoint_record(checkpoint: Checkpoint) -> dict[str, Any]:
    return {"kind": "checkpoint", **checkpoint.model_dump()}


LINK_FIELDS = (
    "link_type",
    "from_namespace",
    "from_key",
    "from_version",
    "to_namespace",
    "to_key",
    "to_version",
    "to_session",
    "seq_start",
    "seq_end",
    "holds_until",
    "reason",
    "metadata",
    "run_id",
    "created_by",
    "created_at",
    "removed_at",
    "removed_by",
)


def link_record(link: MemoryLink) -> dict[str, Any]:
    """Every field of the link but its row id, absent ones as null (times in the records'
    form)."""
    fields = {name: getattr(link, name) for name in LINK_FIELDS}
    for name in ("holds_until", "created_at", "removed_at"):
        fields[name] = iso_or_none(fields[name], what=name)
    return {"kind": "link", **fields}


def root_record(root: Root) -> dict[str, Any]:
    return {
        "kind": "root",
        "name": root.name,
        "path": str(root.path),
        "excludes": list(root.excludes),
        "owner": root.owner,
        "project": root.project,
        "visibility": root.visibility,
    }


def footer(digests: dict[str, Digest]) -> dict[str, Any]:
    return {
        "kind": "footer",
        "counts": {kind: d.count for kind, d in digests.items()},
        "checksums": {kind: d.checksum for kind, d in digests.items()},
    }


def line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


# -- reading: the shape of each line ------------------------------------------------------


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Header(_Line):
    kind: Literal["header"]
    format: str
    version: int
    exported_at: str | None = None
    exported_by: str | None = None
    source: str | None = None
    with_history: bool | None = None
    prefixes: list[str] | None = None
    abathur_memory: str | None = None


class _Memory(_Line):
    kind: Literal["memory"]
    namespace: str
    key: str
    version: int = Field(ge=1)
    value: Any
    memory_type: Literal["semantic", "episodic", "procedural"]
    metadata: dict[str, Any]
    is_deleted: bool
    created_by: str | None
    updated_by: str | None
    created_at: str
    updated_at: str


_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Session(Session):
    model_config = _STRICT
    kind: Literal["session"]
    status: Literal["created", "active", "paused", "terminated", "archived"]
    last_seq: int = Field(ge=0)


class _Event(SessionEvent):
    model_config = _STRICT
    kind: Literal["event"]
    session_id: str
    seq: int = Field(ge=1)


class _Task(Task):
    model_config = _STRICT
    kind: Literal["task"]
    priority: int = Field(ge=0, le=10)
    status: Literal["pending", "blocked", "ready", "running", "completed", "failed", "cancelled"]
    retry_count: int = Field(ge=0)
    max_retries: int = Field(ge=0)
    timeout_seconds: int = Field(ge=1)


class _Checkpoint(Checkpoint):
    model_config = _STRICT
    kind: Literal["checkpoint"]
    iteration: int = Field(ge=0)


class _Root(_Line):
    kind: Literal["root"]
    name: str
    path: str
    excludes: list[str]
    owner: str | None
    project: str | None
    visibility: Literal["private", "project", "all"]


class _Link(_Line):
    kind: Literal["link"]
    link_type: Literal["supersedes", "contradicts", "duplicates", "derived_from", "related"]
    from_namespace: str
    from_key: str
    from_version: int = Field(ge=1)
    to_namespace: str | None
    to_key: str | None
    to_version: int | None = Field(ge=1)
    to_session: str | None
    seq_start: int | None = Field(ge=1)
    seq_end: int | None = Field(ge=1)
    holds_until: str | None
    reason: str | None
    metadata: dict[str, Any]
    run_id: str | None
    created_by: str
    created_at: str
    removed_at: str | None
    removed_by: str | None


class _Footer(_Line):
    kind: Literal["footer"]
    counts: dict[str, int]
    checksums: dict[str, str]


_MODELS: dict[str, type[BaseModel]] = {
    "memory": _Memory,
    "session": _Session,
    "event": _Event,
    "task": _Task,
    "checkpoint": _Checkpoint,
    "root": _Root,
    "link": _Link,
}


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {error['msg']}{more}" if where else f"{error['msg']}{more}"


# -- reading: lines into records ----------------------------------------------------------


def looks_like(first: dict[str, Any]) -> bool:
    return first.get("kind") == "header" and first.get("format") == FORMAT


def read(path: Path, *, max_value_bytes: int, progress: Progress | None = None) -> Unit:
    """Read and check the whole file (nothing is written): every record, or a ``bad``
    problem with its line."""
    reader = _Reader(Unit(name=str(path), format="jsonl"), max_value_bytes)
    with path.open("rb") as stream:
        reader.lines(numbered_lines(stream, reader.unit, progress))
    reader.finish()
    return reader.unit


def numbered_lines(
    stream: Iterable[bytes], unit: Unit, progress: Progress | None
) -> Iterable[tuple[int, str]]:
    """The lines of a file with their numbers; one that is not UTF-8 is a bad line."""
    done = 0
    for number, raw in enumerate(stream, 1):
        done += len(raw)
        if progress is not None and number % 2048 == 0:
            progress(done)
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            unit.fail(Where(unit.name, number), f"not UTF-8 text ({exc.reason})")
    if progress is not None:
        progress(done)


def json_lines(
    numbered: Iterable[tuple[int, str]], unit: Unit, record: str
) -> Iterator[tuple[Where, Any]]:
    """The JSON of each line that is not blank; a line that is not JSON is bad."""
    for number, text in numbered:
        if not text.strip():
            continue
        where = Where(unit.name, number)
        try:
            yield where, json.loads(text)
        except json.JSONDecodeError as exc:
            unit.fail(where, f"not JSON ({exc.msg} at column {exc.colno})", record)


def add_version(
    unit: Unit, where: Where, item: Any, make: Callable[[Where, dict[str, Any]], VersionRecord]
) -> None:
    """The memory ``make`` builds from ``item`` (a JSON object), or a bad line."""
    if not isinstance(item, dict):
        unit.fail(where, "a line must be a JSON object", "memory")
        return
    unit.digest("memory").add(item)
    try:
        unit.versions.append(make(where, item))
    except AbathurError as exc:
        unit.fail(where, str(exc), "memory")


class _Reader:
    def __init__(self, unit: Unit, max_value_bytes: int) -> None:
        self.unit = unit
        self.max_value_bytes = max_value_bytes
        self.header: _Header | None = None
        self.footer: _Footer | None = None
        self.last_line = 0
        self.sessions: dict[str, SessionRecord] = {}
        self.seen: set[tuple[Any, ...]] = set()

    def where(self, number: int) -> Where:
        return Where(self.unit.name, number)

    def lines(self, numbered: Iterable[tuple[int, str]]) -> None:
        for where, obj in json_lines(numbered, self.unit, "file"):
            number = self.last_line = where.line
            if not isinstance(obj, dict):
                self.unit.fail(self.where(number), "a line must be a JSON object")
                continue
            if self.header is None:
                if not self._header(number, obj):
                    return  # not this format: nothing else can be read
                continue
            if self.footer is not None:
                self.unit.fail(self.where(number), "a line after the footer")
                continue
            self._record(number, obj)

    def _header(self, number: int, obj: dict[str, Any]) -> bool:
        try:
            self.header = _Header.model_validate(obj)
        except ValidationError as exc:
            self.unit.fail(
                self.where(number),
                f"the first line must be the header of an abathur-memory export "
                f"({_first_error(exc)})",
            )
            return False
        if self.header.format != FORMAT:
            self.unit.fail(self.where(number), f"format {self.header.format!r} is not {FORMAT!r}")
            return False
        if self.header.version != VERSION:
            self.unit.fail(
                self.where(number),
                f"format version {self.header.version}: this abathur-memory reads version "
                f"{VERSION}"
                + (" (upgrade abathur-memory)" if self.header.version > VERSION else ""),
            )
            return False
        return True

    def _record(self, number: int, obj: dict[str, Any]) -> None:
        kind = obj.get("kind")
        if kind == "footer":
            try:
                self.footer = _Footer.model_validate(obj)
            except ValidationError as exc:
                self.unit.fail(self.where(number), f"footer: {_first_error(exc)}")
            return
        model = _MODELS.get(kind) if isinstance(kind, str) else None
        if model is None or not isinstance(kind, str):
            known = ", ".join(sorted(_MODELS))
            self.unit.fail(self.where(number), f"unknown kind {kind!r} (one of {known})")
            return
        self.unit.digest(kind).add(obj)
        where = self.where(number)
        try:
            parsed = model.model_validate(obj)
            self._add(where, parsed)
        except ValidationError as exc:
            self.unit.fail(where, f"{kind}: {_first_error(exc)}", kind)
        except AbathurError as exc:
            self.unit.fail(where, f"{kind}: {exc}", kind)

    def _once(self, identity: tuple[Any, ...], what: str) -> None:
        if identity in self.seen:
            raise InvalidInput(f"{what} appears twice in the file")
        self.seen.add(identity)

    def _add(self, where: Where, parsed: BaseModel) -> None:
        unit = self.unit
        if isinstance(parsed, _Memory):
            namespace = clean(parsed.namespace)
            key = values.check_identifier(parsed.key, what="key")
            self._once(
                ("memory", namespace, key, parsed.version), f"{namespace}/{key} v{parsed.version}"
            )
            unit.versions.append(
                VersionRecord(
                    where,
                    namespace,
                    key,
                    parsed.version,
                    values.encode_json(parsed.value, what="value", max_bytes=self.max_value_bytes),
                    parsed.memory_type,
                    values.encode_object(parsed.metadata, what="metadata"),
                    parsed.is_deleted,
                    parsed.created_by,
                    parsed.updated_by,
                    iso(parsed.created_at, what="created_at"),
                    iso(parsed.updated_at, what="updated_at"),
                )
            )
        elif isinstance(parsed, _Session):
            record = SessionRecord(where, session_from(parsed.model_dump(exclude={"kind"})))
            self._once(("session", record.session.id), f"session {record.session.id}")
            self.sessions[record.session.id] = record
            unit.sessions.append(record)
        elif isinstance(parsed, _Event):
            owner = self.sessions.get(parsed.session_id)
            if owner is None:
                raise InvalidInput(
                    f"session {parsed.session_id!r} is not in the file before its events"
                )
            event = event_from(parsed.model_dump(exclude={"kind", "session_id"}))
            self._once(("event", parsed.session_id, event.seq), f"event {event.seq} of the session")
            owner.events.append((where, event))
        elif isinstance(parsed, _Task):
            task = task_from(parsed.model_dump(exclude={"kind"}))
            self._once(("task", task.id), f"task {task.id}")
            unit.tasks.append(TaskRecord(where, task))
        elif isinstance(parsed, _Checkpoint):
            checkpoint = checkpoint_from(parsed.model_dump(exclude={"kind"}))
            self._once(("checkpoint", checkpoint.task_id, checkpoint.iteration), "checkpoint")
            unit.checkpoints.append(CheckpointRecord(where, checkpoint))
        elif isinstance(parsed, _Root):
            self._once(("root", parsed.name), f"root {parsed.name}")
            unit.roots.append(
                RootRecord(
                    where,
                    parsed.name,
                    parsed.path,
                    tuple(parsed.excludes),
                    parsed.owner,
                    parsed.project,
                    parsed.visibility,
                )
            )
        elif isinstance(parsed, _Link):
            link = link_from(parsed)
            self._once(("link", *link.__dict__.values()), "the same link")
            unit.links.append(LinkRecord(where, link))

    def finish(self) -> None:
        unit = self.unit
        end = Where(unit.name, self.last_line + 1)
        if self.header is None:
            if not unit.bad:
                unit.fail(Where(unit.name, 1), "the file is empty")
            return
        for record in unit.sessions:
            seqs = [event.seq for _, event in record.events]
            if seqs != list(range(1, len(seqs) + 1)) or len(seqs) != record.session.last_seq:
                unit.fail(
                    record.where,
                    f"session {record.session.id}: last_seq is {record.session.last_seq} but "
                    f"the file holds events {_ranges(seqs)}",
                    "session",
                )
        if self.footer is None:
            unit.fail(end, "the file ends without its footer line (was it cut short?)")
            return
        unit.expected = {
            kind: (count, self.footer.checksums.get(kind, ""))
            for kind, count in self.footer.counts.items()
        }
        for kind in sorted(set(unit.expected) | set(unit.digests)):
            count, checksum = unit.expected.get(kind, (0, ""))
            digest = unit.digests.get(kind, Digest())
            if digest.count != count or (count and digest.checksum != checksum):
                unit.fail(
                    end,
                    f"the {kind} records do not match the footer ({digest.count} records, "
                    f"{digest.checksum}; the footer says {count}, {checksum or 'none'}): the "
                    "file was changed or cut",
                )


def _ranges(seqs: list[int]) -> str:
    if not seqs:
        return "none"
    return f"{seqs[0]}..{seqs[-1]} ({len(seqs)})"


# -- records from dicts (shared with the other readers) -----------------------------------


def session_from(fields: dict[str, Any]) -> Session:
    return Session(
        id=values.check_identifier(fields["id"], what="id"),
        app_name=values.check_identifier(fields["app_name"], what="app_name", max_length=128),
        user_id=values.check_identifier(fields["user_id"], what="user_id", max_length=128),
        project_id=None
        if fields["project_id"] is None
        else values.check_identifier(fields["project_id"], what="project_id", max_length=128),
        status=fields["status"],
        state=_object(fields["state"], "state", session_rules.MAX_STATE_BYTES),
        metadata=_object(fields["metadata"], "metadata", values.MAX_METADATA_BYTES),
        last_seq=fields["last_seq"],
        created_at=iso(fields["created_at"], what="created_at"),
        last_update_time=iso(fields["last_update_time"], what="last_update_time"),
        terminated_at=iso_or_none(fields["terminated_at"], what="terminated_at"),
        archived_at=iso_or_none(fields["archived_at"], what="archived_at"),
    )


def event_from(fields: dict[str, Any]) -> SessionEvent:
    values.encode_json(fields["content"], what="content", max_bytes=session_rules.MAX_EVENT_BYTES)
    delta = fields["state_delta"]
    if delta is not None:
        _object(delta, "state_delta", session_rules.MAX_STATE_BYTES)
    return SessionEvent(
        seq=fields["seq"],
        event_type=values.check_identifier(fields["event_type"], what="event_type", max_length=64),
        actor=values.check_identifier(fields["actor"], what="actor", max_length=128),
        content=fields["content"],
        state_delta=delta,
        created_at=iso(fields["created_at"], what="created_at"),
    )


def task_from(fields: dict[str, Any]) -> Task:
    values.encode_object(fields["input"], what="input", max_bytes=task_rules.MAX_PAYLOAD_BYTES)
    values.encode_json(fields["result"], what="result", max_bytes=task_rules.MAX_PAYLOAD_BYTES)
    ids = [values.check_identifier(dep, what="dependency id") for dep in fields["dependencies"]]
    optional = {
        name: None if fields[name] is None else values.check_identifier(fields[name], what=name)
        for name in ("parent_task_id", "session_id", "created_by", "claimed_by")
    }
    return Task(
        **{
            **fields,
            **optional,
            "id": values.check_identifier(fields["id"], what="id"),
            "agent_type": values.check_identifier(
                fields["agent_type"], what="agent_type", max_length=64
            ),
            "dependencies": ids,
            "submitted_at": iso(fields["submitted_at"], what="submitted_at"),
            "started_at": iso_or_none(fields["started_at"], what="started_at"),
            "completed_at": iso_or_none(fields["completed_at"], what="completed_at"),
            "last_updated_at": iso(fields["last_updated_at"], what="last_updated_at"),
        }
    )


def checkpoint_from(fields: dict[str, Any]) -> Checkpoint:
    values.encode_json(fields["state"], what="state", max_bytes=session_rules.MAX_STATE_BYTES)
    session_id = fields["session_id"]
    return Checkpoint(
        task_id=values.check_identifier(fields["task_id"], what="task_id"),
        iteration=fields["iteration"],
        state=fields["state"],
        session_id=None
        if session_id is None
        else values.check_identifier(session_id, what="session_id"),
        created_at=iso(fields["created_at"], what="created_at"),
    )


def link_from(parsed: _Link) -> ImportedLink:
    """A link line checked: one memory end, or a session's events (derived_from only)."""
    assert parsed.link_type in LINK_TYPES
    to_memory = (parsed.to_namespace, parsed.to_key, parsed.to_version)
    to_session = (parsed.to_session, parsed.seq_start, parsed.seq_end)
    if all(v is not None for v in to_memory) and all(v is None for v in to_session):
        to_namespace: str | None = clean(str(parsed.to_namespace))
        to_key = values.check_identifier(parsed.to_key, what="to_key")
        session = None
    elif all(v is not None for v in to_session) and all(v is None for v in to_memory):
        if parsed.link_type != "derived_from":
            raise InvalidInput("only a derived_from link may point to a session's events")
        if (parsed.seq_end or 0) < (parsed.seq_start or 0):
            raise InvalidInput("seq_end is before seq_start")
        to_namespace = to_key = None
        session = values.check_identifier(parsed.to_session, what="to_session")
    else:
        raise InvalidInput(
            "a link points to a memory (to_namespace, to_key, to_version) or to a session's "
            "events (to_session, seq_start, seq_end), not both or neither"
        )
    from_namespace = clean(parsed.from_namespace)
    from_key = values.check_identifier(parsed.from_key, what="from_key")
    if (from_namespace, from_key) == (to_namespace, to_key):
        raise InvalidInput("a memory cannot be linked to itself")
    if parsed.reason is not None and len(parsed.reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"reason: at most {MAX_REASON_CHARS} characters")
    if (parsed.removed_at is None) != (parsed.removed_by is None):
        raise InvalidInput("removed_at and removed_by go together")
    return ImportedLink(
        link_type=parsed.link_type,
        from_namespace=from_namespace,
        from_key=from_key,
        from_version=parsed.from_version,
        to_namespace=to_namespace,
        to_key=to_key,
        to_version=parsed.to_version,
        to_session=session,
        seq_start=parsed.seq_start,
        seq_end=parsed.seq_end,
        holds_until=iso_or_none(parsed.holds_until, what="holds_until"),
        reason=parsed.reason,
        metadata_text=values.encode_object(parsed.metadata, what="metadata"),
        run_id=parsed.run_id,
        created_by=values.check_identifier(parsed.created_by, what="created_by", max_length=256),
        created_at=iso(parsed.created_at, what="created_at"),
        removed_at=iso_or_none(parsed.removed_at, what="removed_at"),
        removed_by=parsed.removed_by,
    )


def _object(value: Any, what: str, max_bytes: int) -> dict[str, Any]:
    values.encode_object(value, what=what, max_bytes=max_bytes)
    return dict(value)
