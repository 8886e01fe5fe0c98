"""ADK's ``BaseMemoryService`` over abathur-memory memories (see ``adapters/adk.py``).

Each event of a session that has text becomes one episodic memory in
``user:<user>:adk:<app>:memory`` whose key is the event id and whose value holds the text,
its author and role, its time and its session: searchable like any memory, versioned and
audited, and subject to the lifecycle policy for episodic memories. An event already kept is
not written again (adding a session twice adds nothing), and a deleted one is not brought
back by adding its session again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from google.adk.events.event import Event
from google.adk.memory.base_memory_service import BaseMemoryService, SearchMemoryResponse
from google.adk.memory.memory_entry import MemoryEntry
from google.adk.sessions.session import Session
from google.genai import types

from abathur_memory.adapters import adk_state as st
from abathur_memory.adapters.naming import encode_segment
from abathur_memory.api import Memory
from abathur_memory.errors import NotFound
from abathur_memory.memory.memories import PutRequest

MAX_RESULTS = 10


def memory_namespace(app_name: str, user_id: str) -> str:
    return f"user:{user_id}:adk:{encode_segment(app_name, what='app_name')}:memory"


def _text(event: Event) -> str:
    if not event.content or not event.content.parts:
        return ""
    return " ".join(part.text for part in event.content.parts if part.text)


class AbathurMemoryService(BaseMemoryService):
    """Conversation memory for ADK agents, searched by abathur-memory's pipeline."""

    def __init__(self, memory: Memory, *, search_mode: str = "hybrid") -> None:
        self.memory = memory
        self.search_mode = search_mode

    async def add_session_to_memory(self, session: Session) -> None:
        await self.add_events_to_memory(
            app_name=session.app_name,
            user_id=session.user_id,
            events=session.events,
            session_id=session.id,
        )

    async def add_events_to_memory(
        self,
        *,
        app_name: str,
        user_id: str,
        events: Sequence[Event],
        session_id: str | None = None,
        custom_metadata: Mapping[str, object] | None = None,
    ) -> None:
        user = st.acting(self.memory, app_name, user_id)
        namespace = memory_namespace(app_name, user_id)
        puts = []
        for event in events:
            text = _text(event)
            if not text or not event.id or await self._known(user, namespace, event.id):
                continue
            value = {
                "text": text,
                "author": event.author,
                "role": event.content.role if event.content else None,
                "timestamp": datetime.fromtimestamp(event.timestamp).isoformat(),
                "session_id": session_id,
            }
            metadata = {"framework": "google-adk", **(custom_metadata or {})}
            puts.append(PutRequest(namespace, event.id, value, "episodic", metadata))
        await user.memories.put_many(puts)

    async def _known(self, user: Memory, namespace: str, key: str) -> bool:
        """Whether the event was ever kept (live or deleted)."""
        try:
            await user.memories.history(namespace, key)
        except NotFound:
            return False
        return True

    async def search_memory(
        self, *, app_name: str, user_id: str, query: str
    ) -> SearchMemoryResponse:
        user = st.acting(self.memory, app_name, user_id)
        found = await user.memories.search(
            query, memory_namespace(app_name, user_id), MAX_RESULTS, self.search_mode
        )
        return SearchMemoryResponse(memories=[_entry(hit.key, hit.value) for hit in found.results])

    async def delete_memory(
        self, *, app_name: str, user_id: str, memory_id: str | None = None
    ) -> None:
        if not memory_id:
            return
        user = st.acting(self.memory, app_name, user_id)
        try:
            await user.memories.delete(memory_namespace(app_name, user_id), memory_id)
        except NotFound:
            return


def _entry(key: str, value: Any) -> MemoryEntry:
    value = value if isinstance(value, dict) else {"text": str(value)}
    return MemoryEntry(
        id=key,
        author=value.get("author"),
        timestamp=value.get("timestamp"),
        content=types.Content(role=value.get("role"), parts=[types.Part(text=value.get("text"))]),
    )
