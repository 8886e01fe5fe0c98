"""An OpenAI Agents SDK ``Session`` kept in an abathur-memory session.

    from abathur_memory.adapters.openai_agents import AbathurSession

    async with abathur_memory.open(db="agent.db", user="alice") as mem:
        session = AbathurSession("conversation-1", mem)
        await Runner.run(agent, "hello", session=session)

The mapping: the SDK's ``session_id`` names an abathur-memory session owned by the principal
(created at the first ``add_items``; another principal's session of that id is "not found",
as everywhere). Session ids are UUIDs: a UUID is used as it is, any other name as the UUID
it names (``uuid5``, so the same name always finds the same session; the name is kept in the
session's metadata). Each conversation item is one event of type ``agents.item`` whose
content is the item and whose actor is its role (or type). Nothing is ever removed from the
log: ``pop_item`` appends an ``agents.pop`` event naming the sequence number of the item it
took back (compare-and-set on the log, so two concurrent pops never take the same item), and
``clear_session`` appends ``agents.clear``; ``get_items`` reads the log backwards from the
end to the last clear, skipping popped items and events of other kinds. So the history of a
conversation, popped and cleared items included, stays readable with ``session_get``.
``add_items`` appends one event per item (each its own transaction).
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import TYPE_CHECKING, Any

from abathur_memory.adapters.naming import session_uuid
from abathur_memory.api import Memory
from abathur_memory.core.records import SessionEvent
from abathur_memory.errors import Conflict, NotFound

if importlib.util.find_spec("agents") is None:  # pragma: no cover - the extra is missing
    raise ImportError(
        "the OpenAI Agents adapter needs the openai-agents package: "
        "pip install 'abathur-memory[openai-agents]'"
    )

from agents.memory.session_settings import SessionSettings, resolve_session_limit

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

ITEM = "agents.item"
POP = "agents.pop"
CLEAR = "agents.clear"
PAGE = 1000  # events read per step backwards (the service's largest page)
POP_RETRIES = 20


def _actor(item: Any) -> str:
    if isinstance(item, dict):
        for field in ("role", "type"):
            value = item.get(field)
            if isinstance(value, str) and value.strip() and len(value) <= 128:
                return value
    return "item"


class AbathurSession:
    """The ``agents.memory.Session`` protocol over an abathur-memory session."""

    def __init__(
        self,
        session_id: str,
        memory: Memory,
        *,
        session_settings: SessionSettings | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        # Typed as the SDK's Session protocol declares it (a mutable attribute must match
        # exactly), or an AbathurSession would not type-check as Runner.run's session.
        self.session_settings: SessionSettings | None = session_settings or SessionSettings()
        self.memory = memory
        self._metadata = {
            "framework": "openai-agents",
            "agents_session_id": session_id,
            **(metadata or {}),
        }
        # The abathur-memory session that holds the conversation (for session_get).
        self.abathur_session_id = session_uuid("openai-agents", session_id)

    # -- reading the log --------------------------------------------------------------

    async def _live(self, limit: int | None) -> tuple[list[tuple[int, Any]], int]:
        """The newest ``limit`` live items (all of them if None) as (seq, item), oldest
        first, and the session's last sequence number (0: no session yet)."""
        sessions = self.memory.sessions
        try:
            session = await sessions.get(
                self.abathur_session_id, events_after=-1, events_limit=PAGE
            )
        except NotFound:
            return [], 0
        last_seq, events = session.last_seq, session.events
        live: list[tuple[int, Any]] = []
        popped: set[int] = set()
        low = events[0].seq - 1 if events else 0
        while True:
            for event in reversed(events):
                if limit is not None and len(live) >= limit:
                    return live[::-1], last_seq
                if event.event_type == CLEAR:
                    return live[::-1], last_seq
                if event.event_type == POP:
                    popped.add(_popped_seq(event))
                elif event.event_type == ITEM and event.seq not in popped:
                    live.append((event.seq, event.content))
            if low <= 0 or (limit is not None and len(live) >= limit):
                return live[::-1], last_seq
            start = max(0, low - PAGE)
            page = await sessions.get(
                self.abathur_session_id, events_after=start, events_limit=low - start
            )
            events, low = page.events, start

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The conversation so far, or its latest ``limit`` items, oldest first."""
        wanted = resolve_session_limit(limit, self.session_settings)
        if wanted is not None and wanted <= 0:
            return []
        live, _ = await self._live(wanted)
        return [item for _, item in live]

    # -- writing ----------------------------------------------------------------------

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append each item as an ``agents.item`` event (the session is created first if
        it does not exist yet)."""
        for item in items:
            await self._append(ITEM, _actor(item), item)

    async def _append(
        self, event_type: str, actor: str, content: Any, expected_seq: int | None = None
    ) -> None:
        sessions = self.memory.sessions
        try:
            await sessions.append(
                self.abathur_session_id, event_type, actor, content, None, expected_seq
            )
            return
        except NotFound:
            if expected_seq not in (None, 0):
                raise
        with contextlib.suppress(Conflict):  # created meanwhile by another writer
            await sessions.create(session_id=self.abathur_session_id, metadata=self._metadata)
        try:
            await sessions.append(
                self.abathur_session_id, event_type, actor, content, None, expected_seq
            )
        except NotFound:  # it exists, and it is not ours
            raise Conflict(
                f"session id {self.session_id!r} is taken by another user or app; "
                "use another session_id"
            ) from None

    async def pop_item(self) -> TResponseInputItem | None:
        """Take back the most recent item (an ``agents.pop`` event); None if there is none."""
        for _ in range(POP_RETRIES):
            live, last_seq = await self._live(1)
            if not live:
                return None
            seq, item = live[0]
            try:
                await self.memory.sessions.append(
                    self.abathur_session_id, POP, "agents", {"seq": seq}, None, last_seq
                )
            except Conflict:
                if await self._last_seq() != last_seq:  # another writer appended: look again
                    continue
                raise  # not a race (a terminated session, say)
            return item
        raise Conflict(
            f"session {self.session_id} kept changing during pop_item ({POP_RETRIES} tries)"
        )

    async def clear_session(self) -> None:
        """Forget every item so far (an ``agents.clear`` event; the log keeps them)."""
        last_seq = await self._last_seq()
        if last_seq:
            await self._append(CLEAR, "agents", {"items_before": last_seq + 1})

    async def _last_seq(self) -> int:
        try:
            session = await self.memory.sessions.get(self.abathur_session_id, events_limit=0)
        except NotFound:
            return 0
        return session.last_seq


def _popped_seq(event: SessionEvent) -> int:
    content = event.content
    seq = content.get("seq") if isinstance(content, dict) else None
    return seq if isinstance(seq, int) else -1
