"""Sessions to memories (the audit's ``publish``): chosen events of a session become
episodic memories in a namespace the caller may write, each linked ``derived_from`` to the
session and its event's seq. Keys and values are derived from the events, so promoting the
same events again writes nothing new."""

from __future__ import annotations

from dataclasses import dataclass, field

from abathur_memory.core import values
from abathur_memory.core.principal import Principal
from abathur_memory.errors import InvalidInput, NotFound
from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.links import LinkService
from abathur_memory.memory.memories import MemoryService, PutRequest
from abathur_memory.memory.namespaces import Access, clean, parse
from abathur_memory.store.protocols import SessionStore

MAX_PROMOTED = 1000


@dataclass
class Promotion:
    session_id: str
    namespace: str
    keys: list[str] = field(default_factory=list)
    created: int = 0  # memories written (new, or a changed version)
    unchanged: int = 0  # already promoted: nothing written
    links_created: int = 0


def event_key(session_id: str, seq: int) -> str:
    return f"session-{session_id}-{seq}"


class PromotionService:
    def __init__(
        self,
        sessions: SessionStore,
        memories: MemoryService,
        links: LinkService,
        guard: AccessGuard,
    ) -> None:
        self.sessions = sessions
        self.memories = memories
        self.links = links
        self.guard = guard

    async def promote(
        self,
        principal: Principal,
        session_id: str,
        namespace: str,
        seq_start: int,
        seq_end: int,
    ) -> Promotion:
        """Events ``seq_start`` to ``seq_end`` (inclusive) of a session the caller owns."""
        session_id = values.check_id(session_id, what="session_id", made_by="session_create")
        values.check_integer(seq_start, what="seq_start", low=1)
        values.check_integer(seq_end, what="seq_end", low=1)
        if seq_end < seq_start:
            raise InvalidInput("seq_end must not be before seq_start")
        if seq_end - seq_start + 1 > MAX_PROMOTED:
            raise InvalidInput(f"at most {MAX_PROMOTED} events per promotion")
        namespace = clean(namespace)
        if not await self.guard.owns_session(principal, session_id) and not principal.admin:
            rule = "only the session's owner may promote its events"
            self.guard.refuse(principal, f"session:{session_id}", "promote", rule)
        await self.guard.check(principal, namespace, parse(namespace), Access.WRITE, "promote")
        events = await self.sessions.events(session_id, seq_start, seq_end, MAX_PROMOTED)
        if not events:
            raise NotFound(f"session {session_id} has no events {seq_start} to {seq_end}")
        requests = [
            PutRequest(
                namespace,
                event_key(session_id, e.seq),
                {
                    "event_type": e.event_type,
                    "actor": e.actor,
                    "content": e.content,
                    "at": e.created_at,
                },
                memory_type="episodic",
                metadata={"session_id": session_id, "seq": e.seq},
            )
            for e in events
        ]
        results = await self.memories.put_many(principal, requests)
        done = Promotion(session_id, namespace)
        for event, result in zip(events, results, strict=True):
            done.keys.append(result.key)
            if result.created:
                done.created += 1
            else:
                done.unchanged += 1
            _, made = await self.links.store.add_session_link(
                namespace, result.key, session_id, event.seq, event.seq, principal.actor
            )
            done.links_created += int(made)
        return done
