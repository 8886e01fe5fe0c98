"""A ``.claude/``-style folder of context, logs and configuration (seed 003, phase 2:
context files to sessions, logs to events, configuration to configurations).

Given a project folder holding ``.claude/`` (or the ``.claude`` folder itself), each file
is one unit, named by its path from the project folder:

- context: ``CLAUDE.md``, ``CLAUDE.local.md`` (in the project or in ``.claude/``) and
  ``.claude/context/**`` (``.md``, ``.markdown``, ``.txt``) become semantic memories in
  ``project:<project>:claude`` (``user:<user>:claude`` without a project), keyed by that
  path, the text as value; a context or log ``.json`` holding a list (or an object with
  a list of ``events`` or ``messages``) becomes a session, any other one a memory holding it;
- logs: ``.claude/logs/**`` and ``.claude/projects/**/*.jsonl`` (Claude Code's transcripts)
  become terminated sessions of the importing principal, one event per line (a JSON line's
  ``type`` is the event type, its ``message.role`` or ``role`` the actor, its ``timestamp``
  the time; a text line is a ``log`` event, timed by a leading ISO 8601 time if it has one);
- configuration: ``.claude/settings.json``, ``.claude/config/**``, ``.claude/commands/**``
  and ``.claude/agents/**`` become procedural memories in ``app:<app>:claude`` (writing
  ``app:`` needs an admin, or ``--namespace-map``).

``settings.local.json`` and credential files are never read (they may hold secrets); any
other file is listed as skipped. Files without a time of their own take their
modification time.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from abathur_memory.core import values
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import Session, SessionEvent
from abathur_memory.errors import AbathurError, InvalidInput
from abathur_memory.memory import sessions as session_rules
from abathur_memory.memory.namespaces import clean
from abathur_memory.transfer.jsonl import Progress, json_lines, numbered_lines
from abathur_memory.transfer.records import SessionRecord, Unit, VersionRecord, Where, iso

FORMAT = "claude"
PARTS = (
    "settings.json",
    "CLAUDE.md",
    "CLAUDE.local.md",
    "context",
    "logs",
    "projects",
    "config",
    "commands",
    "agents",
)
NEVER = ("settings.local.json", ".credentials.json", "credentials.json")
TEXT = (".md", ".markdown", ".txt")
LOG = (".log", ".txt", ".md", ".jsonl")
_LEADING_TIME = re.compile(
    r"^\W{0,2}(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
)
_ID = uuid.UUID("6f1d3c8e-8a53-4c1e-9a55-1f0e6a0b7c11")  # names this importer's session ids


def looks_like(path: Path) -> bool:
    return path.is_dir() and (
        (path / ".claude").is_dir() or any((path / part).exists() for part in PARTS)
    )


def _folders(path: Path) -> tuple[Path, Path]:
    """(the .claude folder, the folder names are relative to)."""
    if (path / ".claude").is_dir():
        return path / ".claude", path
    if not looks_like(path):
        raise InvalidInput(
            f"{path} is not a .claude folder (nor a folder holding one): it has none of "
            f"{', '.join(PARTS)}"
        )
    return path, path.parent


def read(
    path: Path, principal: Principal, *, max_value_bytes: int, progress: Progress | None = None
) -> list[Unit]:
    claude, base = _folders(path)
    reader = _Folder(claude, base, principal, max_value_bytes)
    files = sorted(p for p in claude.rglob("*") if p.is_file())
    if base != claude:  # a project folder: its own CLAUDE.md files are context too
        files = [base / n for n in ("CLAUDE.md", "CLAUDE.local.md") if (base / n).is_file()] + files
    units: list[Unit] = []
    skipped: list[str] = []
    done = 0
    for file in files:
        unit = reader.unit(file)
        if unit is None:
            skipped.append(reader.name(file))
        else:
            units.append(unit)
        done += file.stat().st_size
        if progress is not None:
            progress(done)
    if skipped and units:
        shown = ", ".join(skipped[:20]) + (
            f" and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        )
        units[0].notes.append(f"skipped {len(skipped)} files this import does not read: {shown}")
    if not units:
        raise InvalidInput(f"{path} holds no context, logs or configuration to import")
    return units


def _mtime(file: Path) -> str:
    return iso(file.stat().st_mtime, what="modification time")


def _first_text(obj: dict[str, Any], *fields: str) -> str | None:
    for field in fields:
        value = obj.get(field)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _object(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _word(value: str | None, default: str, max_length: int) -> str:
    try:
        return values.check_identifier(value, what="name", max_length=max_length)
    except InvalidInput:
        return default


class _Folder:
    def __init__(
        self, claude: Path, base: Path, principal: Principal, max_value_bytes: int
    ) -> None:
        self.claude = claude
        self.base = base
        self.p = principal
        self.max_value_bytes = max_value_bytes
        owner = f"project:{principal.project}" if principal.project else f"user:{principal.user}"
        self.context_ns = clean(f"{owner}:claude")
        self.config_ns = clean(f"app:{principal.app}:claude")

    def name(self, file: Path) -> str:
        return file.relative_to(self.base).as_posix()

    def unit(self, file: Path) -> Unit | None:
        """The unit of ``file``, or None for a file this import does not read."""
        if file.name in NEVER or "credential" in file.name.lower():
            return None
        parts = file.relative_to(self.claude).parts if file.is_relative_to(self.claude) else ()
        top = parts[0] if len(parts) > 1 else ""
        suffix = file.suffix.lower()
        unit = Unit(name=self.name(file), format=FORMAT)
        try:
            context = top == "context" and suffix in TEXT
            if context or (top == "" and file.name in ("CLAUDE.md", "CLAUDE.local.md")):
                self._memory(unit, file, self.context_ns, "semantic", parse_json=False)
            elif top in ("context", "logs") and suffix == ".json":
                self._context_json(unit, file)
            elif (top == "logs" and suffix in LOG) or (top == "projects" and suffix == ".jsonl"):
                self._log(unit, file)
            elif (top == "" and file.name == "settings.json") or top == "config":
                self._memory(unit, file, self.config_ns, "procedural", parse_json=suffix == ".json")
            elif top in ("commands", "agents") and suffix in TEXT:
                self._memory(unit, file, self.config_ns, "procedural", parse_json=False)
            else:
                return None
        except UnicodeDecodeError as exc:
            unit.fail(Where(unit.name), f"not UTF-8 text ({exc.reason})")
        return unit

    # -- memories -------------------------------------------------------------------------

    def _memory(
        self, unit: Unit, file: Path, namespace: str, memory_type: str, *, parse_json: bool
    ) -> None:
        text = file.read_text(encoding="utf-8")
        value: Any = text
        if parse_json:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                unit.fail(Where(unit.name, exc.lineno), f"not JSON ({exc.msg})", "memory")
                return
        self._add_memory(unit, file, namespace, memory_type, value)

    def _add_memory(
        self, unit: Unit, file: Path, namespace: str, memory_type: str, value: Any
    ) -> None:
        where = Where(unit.name)
        unit.digest("memory").add({"key": unit.name, "value": value})
        try:
            unit.versions.append(
                VersionRecord(
                    where,
                    namespace,
                    values.check_identifier(unit.name, what="key"),
                    None,
                    values.encode_json(value, what="value", max_bytes=self.max_value_bytes),
                    memory_type,
                    values.encode_object({"source": FORMAT, "path": unit.name}, what="metadata"),
                    created_at=_mtime(file),
                )
            )
        except AbathurError as exc:
            unit.fail(where, str(exc), "memory")

    def _context_json(self, unit: Unit, file: Path) -> None:
        try:
            obj = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            unit.fail(Where(unit.name, exc.lineno), f"not JSON ({exc.msg})", "session")
            return
        items = obj.get("events", obj.get("messages")) if isinstance(obj, dict) else obj
        if not isinstance(items, list):
            self._add_memory(unit, file, self.context_ns, "semantic", obj)
            return
        about = obj if isinstance(obj, dict) else {}
        ident = _first_text(about, "session_id", "sessionId", "id")
        lines = [(Where(unit.name, item=n), item) for n, item in enumerate(items, 1)]
        self._session(unit, file, ident, lines, about)

    # -- sessions -------------------------------------------------------------------------

    def _log(self, unit: Unit, file: Path) -> None:
        with file.open("rb") as stream:
            lines = [
                (Where(unit.name, number), text.rstrip("\r\n"))
                for number, text in numbered_lines(stream, unit, None)
                if text.strip()
            ]
        items: list[tuple[Where, Any]] = list(lines)
        if file.suffix.lower() == ".jsonl":
            numbered = [(where.line, text) for where, text in lines]
            items = list(json_lines(numbered, unit, "event"))
        ids = {i.get("sessionId") for _, i in items if isinstance(i, dict) and i.get("sessionId")}
        ident = next(iter(ids)) if len(ids) == 1 and isinstance(next(iter(ids)), str) else None
        if ident is None and lines:
            first = hashlib.sha256(lines[0][1].encode("utf-8")).hexdigest()[:16]
            ident = str(uuid.uuid5(_ID, f"{unit.name}:{first}"))
        if not items:
            unit.notes.append(f"{unit.name}: an empty log, nothing to import")
            return
        self._session(unit, file, ident, items, {})

    def _session(
        self,
        unit: Unit,
        file: Path,
        ident: str | None,
        items: Iterable[tuple[Where, Any]],
        obj: dict[str, Any],
    ) -> None:
        events: list[tuple[Where, SessionEvent]] = []
        when = _mtime(file)
        for where, item in items:
            unit.digest("event").add({"line": item})
            try:
                event, when = self._event(len(events) + 1, item, when)
                events.append((where, event))
            except AbathurError as exc:
                unit.fail(where, str(exc), "event")
        state = _object(obj.get("state"))
        metadata = _object(obj.get("metadata"))
        status = str(obj.get("status", "terminated"))
        if status not in session_rules.STATUSES:
            status = "terminated"
        first = events[0][1].created_at if events else when
        last = max((e.created_at for _, e in events), default=when)
        if ident is not None and stored_session_id(ident) != ident:
            metadata = {**metadata, "source_id": ident}
            ident = stored_session_id(ident)
        session_id = ident or str(uuid.uuid5(_ID, unit.name))
        unit.digest("session").add({"id": session_id, "path": unit.name})
        try:
            session = Session(
                id=values.check_identifier(session_id, what="session id"),
                app_name=self.p.app,
                user_id=self.p.user,
                project_id=self.p.project,
                status=status,
                state=state,
                metadata={**metadata, "source": FORMAT, "path": unit.name},
                last_seq=len(events),
                created_at=first,
                last_update_time=last,
                terminated_at=last if status in ("terminated", "archived") else None,
                archived_at=last if status == "archived" else None,
            )
            values.encode_object(
                session.state, what="state", max_bytes=session_rules.MAX_STATE_BYTES
            )
        except AbathurError as exc:
            unit.fail(Where(unit.name), str(exc), "session")
            return
        unit.sessions.append(SessionRecord(Where(unit.name), session, events))

    def _event(self, seq: int, item: Any, previous: str) -> tuple[SessionEvent, str]:
        """One event and its time (a line without one takes the time before it)."""
        when = previous
        if isinstance(item, dict):
            message = item.get("message")
            role = message.get("role") if isinstance(message, dict) else None
            kind = _word(_first_text(item, "type", "event_type", "event"), "message", 64)
            actor = _word(role or _first_text(item, "role", "actor", "agent"), "log", 128)
            stamp = _first_text(item, "timestamp", "created_at", "time", "ts")
        else:
            kind, actor = "log", "log"
            match = _LEADING_TIME.match(str(item))
            stamp = match.group(1).replace(",", ".") if match else None
        if stamp is not None:
            try:
                when = iso(stamp, what="timestamp")
            except InvalidInput:
                when = previous
        values.encode_json(item, what="event", max_bytes=session_rules.MAX_EVENT_BYTES)
        event = SessionEvent(
            seq=seq, event_type=kind, actor=actor, content=item, state_delta=None, created_at=when
        )
        return event, when


def stored_session_id(ident: str) -> str:
    """Session ids are UUIDs (what session_create returns): a UUID is kept, any other name a
    folder gives a session becomes the UUID it names (kept as ``source_id`` in metadata)."""
    try:
        return str(uuid.UUID(ident))
    except ValueError:
        return str(uuid.uuid5(_ID, f"session:{ident}"))
