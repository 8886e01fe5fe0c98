"""Sessions: a lifecycle, an append-only event log and a JSON state.

Lifecycle (seed 000): created → active ⇄ paused → terminated → archived; created may also go
straight to terminated. The first appended event activates a created session. Appending is
one insert plus one update of the session row, so its cost does not grow with the log.
A ``state_delta`` is merged into the state in the same transaction (JSON merge patch,
RFC 7396: a null removes a key). A session belongs to the (user, app) that created it:
anyone else is told it does not exist, and the attempt is audited.
"""

from __future__ import annotations

import builtins
import uuid
from typing import Any

from abathur_memory.core import cursors, values
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import (
    Denial,
    NewEvent,
    Session,
    SessionChange,
    SessionEvent,
    SessionPage,
    SessionWithEvents,
)
from abathur_memory.core.replies import DEFAULT_BOUNDS, Bounds, fitting, json_size
from abathur_memory.errors import Conflict, Forbidden, InvalidInput, NotFound
from abathur_memory.memory.access import audited
from abathur_memory.memory.denials import DenialRecorder
from abathur_memory.store.protocols import SessionStore

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
NOT_YOURS = "sessions belong to the user and app that created them"


class SessionService:
    def __init__(
        self, store: SessionStore, recorder: DenialRecorder, *, bounds: Bounds = DEFAULT_BOUNDS
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.bounds = bounds

    def _deny(self, principal: Principal, attempted: str, target: str, rule: str) -> None:
        self.recorder.record(Denial(principal.actor, "session_denied", attempted, target, rule))

    async def _owned(self, principal: Principal, session_id: str, attempted: str) -> None:
        """NotFound unless ``principal`` may use the session (owners never change)."""
        owner = await self.store.owner(session_id)
        if owner is not None and not principal.may_use_session(*owner):
            self._deny(principal, attempted, session_id, NOT_YOURS)
            owner = None
        if owner is None:
            raise NotFound(f"no session {session_id!r}")

    async def create(
        self,
        principal: Principal,
        app_name: str | None = None,
        user_id: str | None = None,
        project_id: str | None = None,
        state: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        p = principal
        app_name = values.check_identifier(app_name or p.app, what="app_name", max_length=128)
        user_id = values.check_identifier(user_id or p.user, what="user_id", max_length=128)
        if project_id is None:
            project_id = p.project
        else:
            project_id = values.check_identifier(project_id, what="project_id", max_length=128)
        if not p.admin and (user_id != p.user or app_name != p.app):
            rule = "sessions are created for the caller's own user and app"
            self._deny(p, "create", f"user:{user_id} app:{app_name}", rule)
            raise audited(
                Forbidden(
                    f"this server acts for user {p.user!r} in app {p.app!r}; it cannot create "
                    "sessions for another user or app"
                )
            )
        new_id = (
            str(uuid.uuid4())
            if session_id is None
            else values.check_id(session_id, what="session_id", made_by="session_create")
        )
        state_text = values.encode_object(state, what="state", max_bytes=MAX_STATE_BYTES)
        metadata_text = values.encode_object(metadata, what="metadata")
        return await self.store.create(
            new_id, app_name, user_id, project_id, state_text, metadata_text
        )

    async def get(
        self,
        principal: Principal,
        session_id: str,
        *,
        events_after: int = 0,
        events_limit: int = 50,
    ) -> SessionWithEvents:
        """The session with up to ``events_limit`` events after sequence ``events_after``
        (``events_after=-1``: the last ``events_limit`` events)."""
        session_id = values.check_id(session_id, what="session_id", made_by="session_create")
        if not isinstance(events_limit, int) or not 0 <= events_limit <= MAX_EVENTS_PAGE:
            raise InvalidInput(f"events_limit must be between 0 and {MAX_EVENTS_PAGE}")
        if (
            not isinstance(events_after, int)
            or isinstance(events_after, bool)
            or not -1 <= events_after <= values.MAX_INTEGER
        ):
            raise InvalidInput("events_after must be a sequence number >= 0 (or -1 for the latest)")
        # One read: the owner is checked on the row that comes back (a separate read for
        # the owner was one more thread hop per call, as the code before the layers had not).
        # A page of one event is the way to read a long event whole: it is not cut.
        cut = None if events_limit == 1 else self.bounds.field_bytes
        session = await self.store.get(session_id, events_after, events_limit, cut=cut)
        if session is not None and not principal.may_use_session(session.user_id, session.app_name):
            self._deny(principal, "read", session_id, NOT_YOURS)
            session = None
        if session is None:
            raise NotFound(f"no session {session_id!r}")
        return self._bounded(session, latest=events_after == -1)

    def _bounded(self, session: SessionWithEvents, *, latest: bool) -> SessionWithEvents:
        """The session with as many of its events as fit the reply bound (at least one):
        the newest ones for the latest page, else the first ones (the caller goes on with
        events_after = the last seq it got)."""
        events = session.events
        if len(events) < 2:
            return session
        room = self.bounds.reply_bytes - json_size(session.model_copy(update={"events": []}))
        if latest:
            kept = fitting(events[::-1], room)
            fitted = events[len(events) - kept :]
        else:
            fitted = events[: fitting(events, room)]
        if len(fitted) == len(events):
            return session
        return session.model_copy(update={"events": fitted})

    async def events(
        self,
        principal: Principal,
        session_id: str,
        start_seq: int = 1,
        end_seq: int | None = None,
        limit: int = 100,
    ) -> builtins.list[SessionEvent]:
        """Events with start_seq <= seq <= end_seq, in order."""
        session_id = values.check_id(session_id, what="session_id", made_by="session_create")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_EVENTS_PAGE}")
        if start_seq < 1 or (end_seq is not None and end_seq < start_seq):
            raise InvalidInput("need 1 <= start_seq <= end_seq")
        await self._owned(principal, session_id, "read")
        return await self.store.events(session_id, start_seq, end_seq, limit)

    async def append(
        self,
        principal: Principal,
        session_id: str,
        event_type: str,
        actor: str,
        content: Any,
        state_delta: dict[str, Any] | None = None,
        expected_seq: int | None = None,
    ) -> tuple[SessionEvent, Session]:
        """Append one event; returns it and the session after the append."""
        session_id = values.check_id(session_id, what="session_id", made_by="session_create")
        event = NewEvent(
            values.check_identifier(event_type, what="event_type", max_length=64),
            values.check_identifier(actor, what="actor", max_length=128),
            values.encode_json(content, what="content", max_bytes=MAX_EVENT_BYTES),
            None
            if state_delta is None
            else values.encode_object(state_delta, what="state_delta", max_bytes=MAX_STATE_BYTES),
        )
        if expected_seq is not None:
            values.check_integer(
                expected_seq, what="expected_seq (the last seq you have seen)", low=0
            )
        await self._owned(principal, session_id, "append")

        def check(current: Session) -> None:
            if current.status not in OPEN_STATUSES:
                raise Conflict(
                    f"session {session_id} is {current.status}: no more events can be appended"
                )
            if expected_seq is not None and expected_seq != current.last_seq:
                raise Conflict(
                    f"session {session_id} is at seq {current.last_seq}, not {expected_seq}: "
                    "re-read it and retry"
                )

        return await self.store.append(session_id, event, check, MAX_STATE_BYTES)

    async def update_state(
        self,
        principal: Principal,
        session_id: str,
        state: dict[str, Any],
        *,
        replace: bool = False,
    ) -> Session:
        """Merge ``state`` into the session state (or replace it entirely)."""
        session_id = values.check_id(session_id, what="session_id", made_by="session_create")
        state_text = values.encode_object(state, what="state", max_bytes=MAX_STATE_BYTES)
        await self._owned(principal, session_id, "update")

        def decide(current: Session) -> SessionChange:
            if current.status == "archived":
                raise Conflict(f"session {session_id} is archived: its state is frozen")
            return SessionChange(
                state_text=state_text, merge=not replace, max_state_bytes=MAX_STATE_BYTES
            )

        return await self.store.change(session_id, decide)

    async def set_status(self, principal: Principal, session_id: str, status: str) -> Session:
        session_id = values.check_id(session_id, what="session_id", made_by="session_create")
        if status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        await self._owned(principal, session_id, "update")

        def decide(current: Session) -> SessionChange | None:
            if status == current.status:
                return None
            if status not in TRANSITIONS[current.status]:
                allowed = ", ".join(TRANSITIONS[current.status]) or "nothing"
                raise Conflict(
                    f"session {session_id} cannot go from {current.status} to {status} "
                    f"(from {current.status} it can go to: {allowed})"
                )
            stamp = {"terminated": "terminated_at", "archived": "archived_at"}.get(status)
            return SessionChange(status=status, stamp=stamp)

        return await self.store.change(session_id, decide)

    async def list(
        self,
        principal: Principal,
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
        p = principal
        if user_id is not None and user_id != p.user and not p.admin:
            self._deny(p, "list", f"user:{user_id}", "other users' sessions are private")
            raise audited(Forbidden(f"sessions of user {user_id!r} are private"))
        before = cursors.decode(cursor, start=("", ""))
        page, position = await self.store.page(
            user_id=user_id or (None if p.admin else p.user),
            app_name=None if p.admin else p.app,
            status=status,
            project_id=project_id,
            before=(before[0], before[1]),
            limit=limit,
            bounds=self.bounds,
        )
        return SessionPage(page, None if position is None else cursors.encode(*position))
