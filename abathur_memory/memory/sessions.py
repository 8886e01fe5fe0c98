"""Sessions: a lifecycle, an append-only event log and a JSON state.

Lifecycle (seed 000): created → active ⇄ paused → terminated → archived; created may also go
straight to terminated. The first appended event activates a created session. Appending is
one insert plus one update of the session row, so its cost does not grow with the log.
A ``state_delta`` is merged into the state in the same transaction (JSON merge patch,
RFC 7396: a null removes a key).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from abathur_memory.core import cursors, values
from abathur_memory.errors import Conflict, Forbidden, InvalidInput, NotFound
from abathur_memory.memory.access import audited
from abathur_memory.memory.denials import Denial, DenialRecorder
from abathur_memory.memory.namespaces import Principal
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite.database import Database

STATUSES = ("created", "active", "paused", "terminated", "archived")
TRANSITIONS = {
    "created": ("active", "terminated"),
    "active": ("paused", "terminated"),
    "paused": ("active", "terminated"),
    "terminated": ("archived",),
    "archived": (),
}
OPEN_STATUSES = ("created", "active", "paused")
MAX_STATE_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 256 * 1024
MAX_EVENTS_PAGE = 1000
MAX_LIST_LIMIT = 200


class SessionEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    event_type: str
    actor: str
    content: values.JsonAny
    state_delta: dict[str, Any] | None
    created_at: str

    @classmethod
    def from_row(cls, row: driver.Row) -> SessionEvent:
        return cls(
            seq=row["seq"],
            event_type=row["event_type"],
            actor=row["actor"],
            content=json.loads(row["content"]),
            state_delta=values.decode(row["state_delta"]),
            created_at=timestamps.to_iso(row["created_at"]) or "",
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event_type": self.event_type,
            "actor": self.actor,
            "content": self.content,
            "state_delta": self.state_delta,
            "created_at": self.created_at,
        }


class Session(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    app_name: str
    user_id: str
    project_id: str | None
    status: str
    state: dict[str, Any]
    metadata: dict[str, Any]
    last_seq: int
    created_at: str
    last_update_time: str
    terminated_at: str | None
    archived_at: str | None
    events: list[SessionEvent] = Field(default_factory=list)

    @classmethod
    def from_row(cls, row: driver.Row, events: list[SessionEvent] | None = None) -> Session:
        return cls(
            id=row["id"],
            app_name=row["app_name"],
            user_id=row["user_id"],
            project_id=row["project_id"],
            status=row["status"],
            state=json.loads(row["state"]),
            metadata=json.loads(row["metadata"] or "{}"),
            last_seq=row["last_seq"],
            created_at=timestamps.to_iso(row["created_at"]) or "",
            last_update_time=timestamps.to_iso(row["last_update_time"]) or "",
            terminated_at=timestamps.to_iso(row["terminated_at"]),
            archived_at=timestamps.to_iso(row["archived_at"]),
            events=events or [],
        )

    def as_dict(self, *, with_events: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "app_name": self.app_name,
            "user_id": self.user_id,
            "project_id": self.project_id,
            "status": self.status,
            "state": self.state,
            "metadata": self.metadata,
            "last_seq": self.last_seq,
            "created_at": self.created_at,
            "last_update_time": self.last_update_time,
            "terminated_at": self.terminated_at,
            "archived_at": self.archived_at,
        }
        if with_events:
            data["events"] = [e.as_dict() for e in self.events]
        return data


@dataclass
class SessionPage:
    sessions: list[Session]
    next_cursor: str | None


class SessionService:
    """Sessions of the server's principal (an admin principal sees every session)."""

    def __init__(
        self, db: Database, principal: Principal, recorder: DenialRecorder | None = None
    ) -> None:
        self.db = db
        self.principal = principal
        self.recorder = recorder or DenialRecorder(db)

    def _deny(self, attempted: str, target: str, rule: str) -> None:
        self.recorder.record(
            Denial(self.principal.actor, "session_denied", attempted, target, rule)
        )

    async def create(
        self,
        app_name: str | None = None,
        user_id: str | None = None,
        project_id: str | None = None,
        state: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        p = self.principal
        app_name = values.check_identifier(app_name or p.app, what="app_name", max_length=128)
        user_id = values.check_identifier(user_id or p.user, what="user_id", max_length=128)
        if project_id is None:
            project_id = p.project
        elif project_id is not None:
            project_id = values.check_identifier(project_id, what="project_id", max_length=128)
        if not p.admin and (user_id != p.user or app_name != p.app):
            rule = "sessions are created for the caller's own user and app"
            self._deny("create", f"user:{user_id} app:{app_name}", rule)
            raise audited(
                Forbidden(
                    f"this server acts for user {p.user!r} in app {p.app!r}; it cannot create "
                    "sessions for another user or app"
                )
            )
        new_id = values.check_identifier(session_id or str(uuid.uuid4()), what="session_id")
        state_text = values.encode_object(state, what="state", max_bytes=MAX_STATE_BYTES)
        metadata_text = values.encode_object(metadata, what="metadata")

        def insert(conn: driver.Connection) -> driver.Row:
            try:
                return conn.execute(
                    "INSERT INTO sessions (id, app_name, user_id, project_id, state, metadata)"
                    " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
                    (new_id, app_name, user_id, project_id, state_text, metadata_text),
                ).fetchone()
            except driver.IntegrityError:
                raise Conflict(f"a session with id {new_id!r} already exists") from None

        return Session.from_row(await self.db.write(insert))

    async def get(
        self, session_id: str, *, events_after: int = 0, events_limit: int = 50
    ) -> Session:
        """The session with up to ``events_limit`` events after sequence ``events_after``
        (``events_after=-1``: the last ``events_limit`` events)."""
        session_id = values.check_identifier(session_id, what="session_id")
        if not isinstance(events_limit, int) or not 0 <= events_limit <= MAX_EVENTS_PAGE:
            raise InvalidInput(f"events_limit must be between 0 and {MAX_EVENTS_PAGE}")
        if (
            not isinstance(events_after, int)
            or isinstance(events_after, bool)
            or not -1 <= events_after <= values.MAX_INTEGER
        ):
            raise InvalidInput("events_after must be a sequence number >= 0 (or -1 for the latest)")

        def read(conn: driver.Connection) -> Session:
            row = self._owned_row(conn, session_id)
            events = _read_events(conn, session_id, row["last_seq"], events_after, events_limit)
            return Session.from_row(row, events)

        return await self.db.read(read)

    async def events(
        self, session_id: str, start_seq: int = 1, end_seq: int | None = None, limit: int = 100
    ) -> list[SessionEvent]:
        """Events with start_seq <= seq <= end_seq, in order."""
        session_id = values.check_identifier(session_id, what="session_id")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_EVENTS_PAGE}")
        if start_seq < 1 or (end_seq is not None and end_seq < start_seq):
            raise InvalidInput("need 1 <= start_seq <= end_seq")

        def read(conn: driver.Connection) -> list[SessionEvent]:
            self._owned_row(conn, session_id)
            rows = conn.execute(
                "SELECT * FROM session_events WHERE session_id = ? AND seq BETWEEN ? AND ?"
                " ORDER BY seq LIMIT ?",
                (session_id, start_seq, end_seq if end_seq is not None else 2**62, limit),
            ).fetchall()
            return [SessionEvent.from_row(r) for r in rows]

        return await self.db.read(read)

    async def append(
        self,
        session_id: str,
        event_type: str,
        actor: str,
        content: Any,
        state_delta: dict[str, Any] | None = None,
        expected_seq: int | None = None,
    ) -> tuple[SessionEvent, Session]:
        """Append one event; returns it and the session after the append."""
        session_id = values.check_identifier(session_id, what="session_id")
        event_type = values.check_identifier(event_type, what="event_type", max_length=64)
        actor = values.check_identifier(actor, what="actor", max_length=128)
        content_text = values.encode_json(content, what="content", max_bytes=MAX_EVENT_BYTES)
        delta_text = (
            None
            if state_delta is None
            else values.encode_object(state_delta, what="state_delta", max_bytes=MAX_STATE_BYTES)
        )
        if expected_seq is not None and (
            not isinstance(expected_seq, int) or not 0 <= expected_seq <= values.MAX_INTEGER
        ):
            raise InvalidInput("expected_seq must be an integer >= 0 (the last seq you have seen)")

        def append(conn: driver.Connection) -> tuple[SessionEvent, Session]:
            row = self._owned_row(conn, session_id)
            if row["status"] not in OPEN_STATUSES:
                raise Conflict(
                    f"session {session_id} is {row['status']}: no more events can be appended"
                )
            if expected_seq is not None and expected_seq != row["last_seq"]:
                raise Conflict(
                    f"session {session_id} is at seq {row['last_seq']}, not {expected_seq}: "
                    "re-read it and retry"
                )
            seq = row["last_seq"] + 1
            event = conn.execute(
                "INSERT INTO session_events (session_id, seq, event_type, actor, content,"
                " state_delta) VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
                (session_id, seq, event_type, actor, content_text, delta_text),
            ).fetchone()
            status = "active" if row["status"] == "created" else row["status"]
            updated = conn.execute(
                "UPDATE sessions SET last_seq = ?, status = ?,"
                " state = CASE WHEN ? IS NULL THEN state ELSE json_patch(state, ?) END,"
                f" last_update_time = {timestamps.SQL_NOW} WHERE id = ? RETURNING *",
                (seq, status, delta_text, delta_text, session_id),
            ).fetchone()
            _check_state_size(updated["state"])
            return SessionEvent.from_row(event), Session.from_row(updated)

        return await self.db.write(append)

    async def update_state(
        self, session_id: str, state: dict[str, Any], *, replace: bool = False
    ) -> Session:
        """Merge ``state`` into the session state (or replace it entirely)."""
        session_id = values.check_identifier(session_id, what="session_id")
        state_text = values.encode_object(state, what="state", max_bytes=MAX_STATE_BYTES)
        expression = "?" if replace else "json_patch(state, ?)"

        def update(conn: driver.Connection) -> Session:
            row = self._owned_row(conn, session_id)
            if row["status"] == "archived":
                raise Conflict(f"session {session_id} is archived: its state is frozen")
            updated = conn.execute(
                f"UPDATE sessions SET state = {expression},"
                f" last_update_time = {timestamps.SQL_NOW} WHERE id = ? RETURNING *",
                (state_text, session_id),
            ).fetchone()
            _check_state_size(updated["state"])
            return Session.from_row(updated)

        return await self.db.write(update)

    async def set_status(self, session_id: str, status: str) -> Session:
        session_id = values.check_identifier(session_id, what="session_id")
        if status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")

        def update(conn: driver.Connection) -> Session:
            row = self._owned_row(conn, session_id)
            current = row["status"]
            if status == current:
                return Session.from_row(row)
            if status not in TRANSITIONS[current]:
                allowed = ", ".join(TRANSITIONS[current]) or "nothing"
                raise Conflict(
                    f"session {session_id} cannot go from {current} to {status} "
                    f"(from {current} it can go to: {allowed})"
                )
            stamp = {"terminated": "terminated_at", "archived": "archived_at"}.get(status)
            extra = f", {stamp} = {timestamps.SQL_NOW}" if stamp else ""
            updated = conn.execute(
                f"UPDATE sessions SET status = ?, last_update_time = {timestamps.SQL_NOW}{extra}"
                " WHERE id = ? RETURNING *",
                (status, session_id),
            ).fetchone()
            return Session.from_row(updated)

        return await self.db.write(update)

    async def list(
        self,
        *,
        status: str | None = None,
        project_id: str | None = None,
        user_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> SessionPage:
        """Sessions newest first; the principal's own unless it is admin."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        p = self.principal
        if user_id is not None and user_id != p.user and not p.admin:
            self._deny("list", f"user:{user_id}", "other users' sessions are private")
            raise audited(Forbidden(f"sessions of user {user_id!r} are private"))
        # rowid breaks ties between sessions created in the same millisecond.
        before_created, before_rowid = cursors.decode(cursor, start=("\uffff", str(2**62)))
        clauses = ["(created_at, rowid) < (?, CAST(? AS INTEGER))"]
        params: list[Any] = [before_created, before_rowid]
        if not p.admin or user_id is not None:
            clauses.append("user_id = ?")
            params.append(user_id or p.user)
        if not p.admin:
            clauses.append("app_name = ?")
            params.append(p.app)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if project_id is not None:
            clauses.append("project_id = ?")
            params.append(project_id)
        sql = (
            f"SELECT rowid AS row_number, * FROM sessions WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        )
        rows = await self.db.fetchall(sql, [*params, limit + 1])
        sessions = [Session.from_row(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = cursors.encode(last["created_at"], str(last["row_number"]))
        return SessionPage(sessions, next_cursor)

    def _owned_row(self, conn: driver.Connection, session_id: str) -> driver.Row:
        row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is not None and not self.principal.may_use_session(row["user_id"], row["app_name"]):
            # Other users' sessions are reported as missing (their ids are not disclosed),
            # and the attempt is audited like any denial.
            self._deny("use", session_id, "sessions belong to the user and app that created them")
            row = None
        if row is None:
            raise NotFound(f"no session {session_id!r}")
        return row


def _read_events(
    conn: driver.Connection, session_id: str, last_seq: int, after: int, limit: int
) -> list[SessionEvent]:
    if limit == 0:
        return []
    start = max(last_seq - limit, 0) if after == -1 else after
    rows = conn.execute(
        "SELECT * FROM session_events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (session_id, start, limit),
    ).fetchall()
    return [SessionEvent.from_row(r) for r in rows]


def _check_state_size(state_text: str) -> None:
    size = len(state_text.encode("utf-8"))
    if size > MAX_STATE_BYTES:
        raise InvalidInput(
            f"the merged state would be {size:,} bytes; the limit is {MAX_STATE_BYTES:,}"
        )
