"""Sessions to memories (the audit's ``publish``): chosen events of a session become
episodic memories in a namespace the caller may write, each linked ``derived_from`` to the
session and its event's seq. Keys and values are derived from the events, so promoting the
same events again writes nothing new.

With ``summary`` and a configured chat model, a semantic memory summarising the events
(keyed by the session and the seqs it covers, ``derived_from`` that range) is written too,
once: when it exists, the model is not asked again. A model that gives no answer leaves
the events promoted and says why there is no summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from abathur_memory.core import values
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import SessionEvent
from abathur_memory.errors import InvalidInput, NotFound
from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.links import LinkService
from abathur_memory.memory.memories import MemoryService, PutRequest
from abathur_memory.memory.model_help import ModelHelp, NoAnswer, Said
from abathur_memory.memory.namespaces import Access, clean, parse
from abathur_memory.memory.proposals import text_of
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
    summary: str | None = None  # the summary memory's key
    note: str | None = None  # why a summary asked for is not there


def event_key(session_id: str, seq: int) -> str:
    return f"session-{session_id}-{seq}"


def summary_key(session_id: str, first: int, last: int) -> str:
    return f"session-{session_id}-{first}-{last}-summary"


class PromotionService:
    def __init__(
        self,
        sessions: SessionStore,
        memories: MemoryService,
        links: LinkService,
        guard: AccessGuard,
        model: ModelHelp | None = None,
    ) -> None:
        self.sessions = sessions
        self.memories = memories
        self.links = links
        self.guard = guard
        self.model = model or ModelHelp(None)

    async def promote(
        self,
        principal: Principal,
        session_id: str,
        namespace: str,
        seq_start: int,
        seq_end: int,
        summary: bool = False,
    ) -> Promotion:
        """Events ``seq_start`` to ``seq_end`` (inclusive) of a session the caller owns;
        ``summary``: and the chat model's summary of them."""
        session_id = values.check_id(session_id, what="session_id", made_by="session_create")
        values.check_integer(seq_start, what="seq_start", low=1)
        values.check_integer(seq_end, what="seq_end", low=1)
        if seq_end < seq_start:
            raise InvalidInput("seq_end must not be before seq_start")
        if seq_end - seq_start + 1 > MAX_PROMOTED:
            raise InvalidInput(f"at most {MAX_PROMOTED} events per promotion")
        if summary and not self.model.configured:
            raise InvalidInput("summary needs a chat model: set chat_model (see the README)")
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
        if summary:
            await self._summarise(principal, done, events)
        return done

    async def _summarise(
        self, principal: Principal, done: Promotion, events: list[SessionEvent]
    ) -> None:
        first, last = events[0].seq, events[-1].seq
        key = summary_key(done.session_id, first, last)
        try:
            await self.memories.get(principal, done.namespace, key)
        except NotFound:
            pass
        else:  # summarised before: the model is not asked again
            done.keys.append(key)
            done.summary = key
            done.unchanged += 1
            return
        asking = self.model.round()
        text = await asking.summarise(
            [
                Said(f"{e.seq} {e.actor} {e.event_type}", e.created_at, text_of(e.content))
                for e in events
            ]
        )
        if isinstance(text, NoAnswer):
            done.note = f"no summary: {text.why}"
            return
        result = await self.memories.put(
            principal,
            done.namespace,
            key,
            {"text": text, "written_by": asking.model_id},
            "semantic",
            {"session_id": done.session_id, "seq_start": first, "seq_end": last},
        )
        done.keys.append(key)
        done.summary = key
        if result.created:
            done.created += 1
        else:
            done.unchanged += 1
        _, made = await self.links.store.add_session_link(
            done.namespace, key, done.session_id, first, last, principal.actor
        )
        done.links_created += int(made)
