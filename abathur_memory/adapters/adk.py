"""Google ADK services kept in abathur-memory: sessions and memory.

    from abathur_memory.adapters.adk import AbathurMemoryService, AbathurSessionService

    async with abathur_memory.open(db="agent.db", user="ops", admin=True) as mem:
        runner = Runner(
            app_name="helpdesk", agent=agent,
            session_service=AbathurSessionService(mem),
            memory_service=AbathurMemoryService(mem),
        )

How ADK's app, user and session map onto principals, sessions and memories is in
``adapters/adk_state.py``. An ADK event is one session event of type ``adk.event`` (its
author the actor, its JSON the content), appended with compare-and-set on the session's
last sequence number, so a stale session object is refused (``StaleSessionError``) as
ADK's database services refuse it. ``delete_session`` terminates the session: its log stays
(audited, readable with ``session_get``) but ADK no longer sees it, and its id is not
reused. The memory service keeps each event with text as an episodic memory in
``user:<user>:adk:<app>:memory`` (key: the event id), searched through the retrieval
pipeline (hybrid by default; ``search_mode="keyword"`` matches words only, as ADK's
in-memory service does).

Deliberate differences from ADK's own services: a deleted session's id cannot be used
again; events are limited to 256 KiB of JSON each (the session service's event limit);
``app:`` state needs an admin principal (see ``adk_state``); app and user ids must be valid
namespace segments (no ``:`` or whitespace) since they name the principal's namespaces.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from typing import Any

from abathur_memory.adapters import adk_state as st
from abathur_memory.api import Memory
from abathur_memory.core.records import Session as Stored
from abathur_memory.core.records import SessionEvent
from abathur_memory.errors import Conflict, NotFound

if importlib.util.find_spec("google.adk") is None:  # pragma: no cover - the extra is missing
    raise ImportError(
        "the ADK adapter needs the google-adk package: pip install 'abathur-memory[adk]'"
    )

from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.platform import time as platform_time
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session

try:  # ADK's own error for a lost race (a ValueError); private in some releases
    from google.adk.errors._stale_session_error import StaleSessionError
except ImportError:  # pragma: no cover - older ADK

    class StaleSessionError(ValueError):  # type: ignore[no-redef]
        pass


EVENT = "adk.event"
PAGE = 1000
OPEN = ("created", "active", "paused")


class AbathurSessionService(BaseSessionService):
    """ADK's ``BaseSessionService`` over abathur-memory sessions and memories."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        user = st.acting(self.memory, app_name, user_id)
        sid = (session_id or "").strip() or str(uuid.uuid4())
        app, user_state, session_state = st.split_delta(state or {})
        st.check_app_writer(self.memory, app)
        now = platform_time.get_time()
        try:
            created = await user.sessions.create(
                app_name,
                user_id,
                state={**session_state, st.UPDATED: now},
                metadata={"framework": "google-adk", "adk_session_id": sid},
                session_id=st.stored_id(app_name, user_id, sid),
            )
        except Conflict:
            raise AlreadyExistsError(f"Session with id {sid} already exists.") from None
        await st.write_scopes(self.memory, user, app_name, user_id, app, user_state)
        return await self._session(user, created, sid, [])

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        user = st.acting(self.memory, app_name, user_id)
        sid = session_id.strip()
        found = await self._stored(user, app_name, user_id, sid)
        if found is None:
            return None
        events = await self._events(user, found, config or GetSessionConfig())
        return await self._session(user, found, sid, events)

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """Oldest update first; ``user_id=None`` lists every user's (admin only)."""
        lister = self.memory if user_id is None else st.acting(self.memory, app_name, user_id)
        if user_id is None and not self.memory.principal.admin:
            rule = "listing every user's sessions needs an admin principal"
            self.memory.refuse("list sessions of", f"app:{app_name}", rule)
        sessions: list[Session] = []
        cursor: str | None = None
        while True:
            page = await lister.sessions.list(user_id=user_id, limit=200, cursor=cursor)
            for found in page.sessions:
                sid = st.adk_id(found)
                if sid is None or found.app_name != app_name or found.status not in OPEN:
                    continue
                owner = st.acting(self.memory, app_name, found.user_id)
                sessions.append(await self._session(owner, found, sid, []))
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        user = st.acting(self.memory, app_name, user_id)
        found = await self._stored(user, app_name, user_id, session_id.strip())
        if found is not None:
            await user.sessions.set_status(found.id, "terminated")

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        user = st.acting(self.memory, app_name, user_id)
        return await st.read_scope(user, st.user_namespace(app_name, user_id))

    async def append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        user = st.acting(self.memory, session.app_name, session.user_id)
        app, user_state, session_delta = st.split_delta(event.actions.state_delta or {})
        st.check_app_writer(self.memory, app)
        marker = session._storage_update_marker
        stored = st.stored_id(session.app_name, session.user_id, session.id)
        try:
            _, after = await user.sessions.append(
                stored,
                EVENT,
                event.author or "adk",
                json.loads(event.model_dump_json(exclude_none=True)),
                {**session_delta, st.UPDATED: event.timestamp},
                None if marker is None else int(marker),
            )
        except NotFound:
            raise SessionNotFoundError(f"Session {session.id} not found.") from None
        except Conflict as exc:
            now = await self._stored(user, session.app_name, session.user_id, session.id)
            if marker is not None and now is not None and str(now.last_seq) != marker:
                raise StaleSessionError(
                    f"session {session.id} was modified in storage since it was read: {exc}"
                ) from None
            raise
        await st.write_scopes(self.memory, user, session.app_name, session.user_id, app, user_state)
        session.last_update_time = event.timestamp
        session._storage_update_marker = str(after.last_seq)
        return self._commit_event_to_session(session, event)

    # -- reading ----------------------------------------------------------------------

    async def _stored(self, user: Memory, app_name: str, user_id: str, sid: str) -> Stored | None:
        try:
            found = await user.sessions.get(st.stored_id(app_name, user_id, sid), events_limit=0)
        except NotFound:
            return None
        return found if found.status in OPEN else None

    async def _events(self, user: Memory, found: Stored, config: GetSessionConfig) -> list[Event]:
        """The session's events, the latest ``num_recent_events`` of them and only those
        from ``after_timestamp`` on, when asked."""
        recent = config.num_recent_events
        if recent == 0:
            return []
        after = 0 if recent is None else max(0, found.last_seq - recent)
        events: list[Event] = []
        while after < found.last_seq:
            page = await user.sessions.get(found.id, events_after=after, events_limit=PAGE)
            events.extend(_event(e) for e in page.events if e.event_type == EVENT)
            if not page.events:
                break
            after = page.events[-1].seq
        if config.after_timestamp is not None:
            events = [e for e in events if e.timestamp >= config.after_timestamp]
        return events

    async def _session(self, user: Memory, found: Stored, sid: str, events: list[Event]) -> Session:
        session = Session(
            id=sid,
            app_name=found.app_name,
            user_id=found.user_id,
            state=await st.merged(self.memory, user, found.app_name, found.user_id, found.state),
            events=events,
            last_update_time=float(found.state.get(st.UPDATED) or 0.0),
        )
        session._storage_update_marker = str(found.last_seq)
        return session


def _event(stored: SessionEvent) -> Event:
    return Event.model_validate_json(json.dumps(stored.content))


from abathur_memory.adapters.adk_memory import AbathurMemoryService  # noqa: E402

__all__ = ["AbathurMemoryService", "AbathurSessionService"]
