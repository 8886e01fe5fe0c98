"""Contract tests of the Google ADK adapters, on both backends.

Modelled on ADK's own tests (google-adk 2.13; its repository's
``tests/unittests/sessions/test_session_service.py``, the shared contract that every
``BaseSessionService`` registered in ``_conformance.py`` owes, and
``tests/unittests/memory/test_in_memory_memory_service.py``): the same cases, run against
``AbathurSessionService`` and ``AbathurMemoryService``. Cases about one backend's machinery
(SQLAlchemy engines, rollbacks, table creation races, the in-memory copy modes) are left
out. As in ADK's conformance registry, a case where we deliberately differ is marked
``xfail(strict=True)`` with the reason (DIFFERS).

The services are opened by an admin principal (as a server serving many users is): each
ADK user is then acted for with that user's own access rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from adapter_fixtures import admin_memory_fixture, memory_fixture  # noqa: F401

pytest.importorskip("google.adk")

from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from google.genai import types

from abathur_memory.adapters.adk import (
    AbathurMemoryService,
    AbathurSessionService,
    StaleSessionError,
)
from abathur_memory.adapters.adk_state import stored_id
from abathur_memory.errors import Forbidden, InvalidInput

pytestmark = pytest.mark.anyio

DIFFERS = {
    "reuse": "delete_session terminates the session and keeps its log (never destroy), so "
    "its id is not free again: create_session with it raises AlreadyExistsError",
    "context": "a turn is also found through the words of the turns around it in its own "
    "session (memory_search reads conversations in context, docs/retrieval.md): it comes "
    "after the turns that hold the words",
    "cjk": "keyword search tokenizes on word boundaries (FTS5 unicode61 / PostgreSQL "
    "simple): a word inside unspaced Japanese or Chinese text is not a keyword match",
}


@pytest.fixture
def service(admin_memory):
    return AbathurSessionService(admin_memory)


def _now() -> float:
    return datetime.now(UTC).timestamp()


# -- sessions: the shared contract ----------------------------------------------------------


async def test_get_empty_session(service):
    assert not await service.get_session(app_name="my_app", user_id="test_user", session_id="123")


async def test_create_get_session(service):
    session = await service.create_session(
        app_name="my_app", user_id="test_user", state={"key": "value"}
    )
    assert (session.app_name, session.user_id, session.state) == (
        "my_app",
        "test_user",
        {"key": "value"},
    )
    assert session.id and session.last_update_time <= _now()
    got = await service.get_session(app_name="my_app", user_id="test_user", session_id=session.id)
    assert got == session
    await service.delete_session(app_name="my_app", user_id="test_user", session_id=session.id)
    assert (
        await service.get_session(app_name="my_app", user_id="test_user", session_id=session.id)
        is None
    )


async def test_create_and_list_sessions(service):
    ids = [f"session{i}" for i in range(5)]
    for sid in ids:
        await service.create_session(
            app_name="my_app", user_id="test_user", session_id=sid, state={"key": "value" + sid}
        )
    sessions = (await service.list_sessions(app_name="my_app", user_id="test_user")).sessions
    assert {s.id for s in sessions} == set(ids)
    assert all(s.state == {"key": "value" + s.id} for s in sessions)


async def test_list_sessions_all_users(service):
    for user, sid in (("user1", "session1a"), ("user1", "session1b"), ("user2", "session2a")):
        await service.create_session(
            app_name="my_app", user_id=user, session_id=sid, state={"key": "value" + sid[-2:]}
        )
    one = (await service.list_sessions(app_name="my_app", user_id="user1")).sessions
    assert {s.id: s.state for s in one} == {
        "session1a": {"key": "value1a"},
        "session1b": {"key": "value1b"},
    }
    two = (await service.list_sessions(app_name="my_app", user_id="user2")).sessions
    assert [(s.id, s.state) for s in two] == [("session2a", {"key": "value2a"})]
    every = (await service.list_sessions(app_name="my_app", user_id=None)).sessions
    assert {s.id for s in every} == {"session1a", "session1b", "session2a"}


async def test_list_sessions_ordered_by_last_update_time(service):
    for sid in ("s1", "s2", "s3"):
        await service.create_session(app_name="my_app", user_id="u", session_id=sid)
    s1 = await service.get_session(app_name="my_app", user_id="u", session_id="s1")
    await service.append_event(s1, Event(author="user", timestamp=s1.last_update_time + 100))
    listed = (await service.list_sessions(app_name="my_app", user_id="u")).sessions
    assert [s.id for s in listed] == ["s2", "s3", "s1"]


async def test_app_state_is_shared_by_all_users_of_app(service):
    s1 = await service.create_session(
        app_name="my_app", user_id="u1", session_id="s1", state={"app:k1": "v1"}
    )
    await service.append_event(
        s1,
        Event(
            invocation_id="inv1", author="user", actions=EventActions(state_delta={"app:k2": "v2"})
        ),
    )
    s2 = await service.create_session(app_name="my_app", user_id="u2", session_id="s2")
    assert s2.state == {"app:k1": "v1", "app:k2": "v2"}
    again = await service.get_session(app_name="my_app", user_id="u1", session_id="s1")
    assert again.state["app:k1"] == "v1" and again.state["app:k2"] == "v2"


async def test_user_state_is_shared_only_by_user_sessions(service):
    s1 = await service.create_session(
        app_name="my_app", user_id="u1", session_id="s1", state={"user:k1": "v1"}
    )
    await service.append_event(
        s1,
        Event(
            invocation_id="inv1", author="user", actions=EventActions(state_delta={"user:k2": "v2"})
        ),
    )
    s1b = await service.create_session(app_name="my_app", user_id="u1", session_id="s1b")
    assert s1b.state == {"user:k1": "v1", "user:k2": "v2"}
    s2 = await service.create_session(app_name="my_app", user_id="u2", session_id="s2")
    assert s2.state == {}


async def test_session_state_is_not_shared(service):
    s1 = await service.create_session(
        app_name="my_app", user_id="u1", session_id="s1", state={"sk1": "v1"}
    )
    await service.append_event(
        s1,
        Event(invocation_id="inv1", author="user", actions=EventActions(state_delta={"sk2": "v2"})),
    )
    got = await service.get_session(app_name="my_app", user_id="u1", session_id="s1")
    assert got.state["sk1"] == "v1" and got.state["sk2"] == "v2"
    s1b = await service.create_session(app_name="my_app", user_id="u1", session_id="s1b")
    assert s1b.state == {}


async def test_temp_state_is_not_persisted_in_state_or_events(service):
    session = await service.create_session(app_name="my_app", user_id="u1", session_id="s1")
    event = Event(
        invocation_id="inv1",
        author="user",
        actions=EventActions(state_delta={"temp:k1": "v1", "sk": "v2"}),
    )
    await service.append_event(session=session, event=event)
    assert session.state.get("temp:k1") == "v1"  # visible for the rest of the invocation
    got = await service.get_session(app_name="my_app", user_id="u1", session_id="s1")
    assert got.state.get("sk") == "v2" and "temp:k1" not in got.state
    assert "temp:k1" not in got.events[0].actions.state_delta
    assert got.events[0].actions.state_delta.get("sk") == "v2"


async def test_get_session_respects_user_id(service):
    s1 = await service.create_session(app_name="my_app", user_id="u1", session_id="s1")
    await service.append_event(s1, Event(invocation_id="inv1", author="user"))
    await service.create_session(app_name="my_app", user_id="u2", session_id="s1")
    got = await service.get_session(app_name="my_app", user_id="u2", session_id="s1")
    assert got.user_id == "u2" and len(got.events) == 0


async def test_create_session_with_existing_id_raises_error(service):
    await service.create_session(app_name="my_app", user_id="u", session_id="existing_session")
    with pytest.raises(AlreadyExistsError):
        await service.create_session(app_name="my_app", user_id="u", session_id="existing_session")


async def test_padded_session_id_reads_and_deletes(service):
    await service.create_session(app_name="my_app", user_id="u", session_id="  padded  ")
    got = await service.get_session(app_name="my_app", user_id="u", session_id="padded ")
    assert got is not None and got.id == "padded"
    await service.delete_session(app_name="my_app", user_id="u", session_id=" padded")
    assert await service.get_session(app_name="my_app", user_id="u", session_id="padded") is None


async def test_append_event_bytes(service):
    session = await service.create_session(app_name="my_app", user_id="user")
    content = types.Content(
        role="user",
        parts=[types.Part.from_bytes(data=b"test_image_data", mime_type="image/png")],
    )
    grounding = types.GroundingMetadata(
        search_entry_point=types.SearchEntryPoint(sdk_blob=b"test_sdk_blob")
    )
    await service.append_event(
        session,
        Event(invocation_id="inv", author="user", content=content, grounding_metadata=grounding),
    )
    assert session.events[0].content == content
    got = await service.get_session(app_name="my_app", user_id="user", session_id=session.id)
    assert len(got.events) == 1
    assert got.events[0].content == content
    assert got.events[0].grounding_metadata == grounding


async def test_append_event_complete(service):
    session = await service.create_session(app_name="my_app", user_id="user")
    event = Event(
        invocation_id="invocation",
        author="user",
        content=types.Content(role="user", parts=[types.Part(text="test_text")]),
        turn_complete=True,
        partial=False,
        actions=EventActions(artifact_delta={"file": 0}, transfer_to_agent="agent", escalate=True),
        long_running_tool_ids={"tool1"},
        error_code="error_code",
        error_message="error_message",
        interrupted=True,
        grounding_metadata=types.GroundingMetadata(web_search_queries=["query1"]),
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=1, candidates_token_count=1, total_token_count=2
        ),
        citation_metadata=types.CitationMetadata(),
        custom_metadata={"custom_key": "custom_value"},
        input_transcription=types.Transcription(text="input transcription", finished=True),
        output_transcription=types.Transcription(text="output transcription", finished=True),
    )
    await service.append_event(session=session, event=event)
    got = await service.get_session(app_name="my_app", user_id="user", session_id=session.id)
    assert got == session


async def test_session_last_update_time_updates_on_event(service):
    session = await service.create_session(app_name="my_app", user_id="user")
    original = session.last_update_time
    await service.append_event(
        session, Event(invocation_id="invocation", author="user", timestamp=original + 10)
    )
    assert session.last_update_time == pytest.approx(original + 10, abs=1e-6)
    got = await service.get_session(app_name="my_app", user_id="user", session_id=session.id)
    assert got.last_update_time == pytest.approx(original + 10, abs=1e-6)
    assert got.last_update_time > original


async def test_append_event_to_stale_session(service):
    original = await service.create_session(app_name="my_app", user_id="user")
    now = _now()
    await service.append_event(
        original,
        Event(
            invocation_id="inv1",
            author="user",
            timestamp=now + 1,
            actions=EventActions(state_delta={"sk1": "v1"}),
        ),
    )
    updated = await service.get_session(app_name="my_app", user_id="user", session_id=original.id)
    await service.append_event(
        updated,
        Event(
            invocation_id="inv2",
            author="user",
            timestamp=now + 2,
            actions=EventActions(state_delta={"sk2": "v2"}),
        ),
    )
    with pytest.raises(ValueError, match="modified in storage"):
        await service.append_event(
            original,
            Event(
                invocation_id="inv3",
                author="user",
                timestamp=now + 3,
                actions=EventActions(state_delta={"sk3": "v3"}),
            ),
        )
    final = await service.get_session(app_name="my_app", user_id="user", session_id=original.id)
    assert [e.invocation_id for e in final.events] == ["inv1", "inv2"]
    assert final.state.get("sk2") == "v2" and final.state.get("sk3") is None


async def test_append_event_concurrent_stale_sessions_reject_stale_writer(service):
    session = await service.create_session(app_name="my_app", user_id="user")
    for i in range(4):
        latest = await service.get_session(app_name="my_app", user_id="user", session_id=session.id)
        copies = [latest.model_copy(deep=True), latest.model_copy(deep=True)]
        for copy in copies:
            copy._storage_update_marker = latest._storage_update_marker
        results = await asyncio.gather(
            *(
                service.append_event(copy, Event(invocation_id=f"inv{i}-{n}", author="user"))
                for n, copy in enumerate(copies)
            ),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, Exception)]
        assert len(errors) == 1 and isinstance(errors[0], StaleSessionError)
    final = await service.get_session(app_name="my_app", user_id="user", session_id=session.id)
    assert len(final.events) == 4


async def test_get_session_with_config(service):
    session = await service.create_session(app_name="my_app", user_id="user")
    for i in range(1, 6):
        await service.append_event(session, Event(author="user", timestamp=i))

    async def events(**config):
        got = await service.get_session(
            app_name="my_app",
            user_id="user",
            session_id=session.id,
            config=GetSessionConfig(**config) if config else None,
        )
        return [e.timestamp for e in got.events]

    assert await events() == [1, 2, 3, 4, 5]
    assert await events(num_recent_events=0) == []
    assert await events(num_recent_events=3) == [3, 4, 5]
    assert await events(after_timestamp=4.0) == [4, 5]
    assert await events(after_timestamp=50) == []
    assert await events(after_timestamp=4.0, num_recent_events=3) == [4, 5]


async def test_partial_events_are_not_persisted(service):
    session = await service.create_session(app_name="my_app", user_id="user")
    await service.append_event(session, Event(author="user", partial=True))
    assert len(session.events) == 0
    got = await service.get_session(app_name="my_app", user_id="user", session_id=session.id)
    assert len(got.events) == 0


async def test_get_user_state(service):
    assert not await service.get_user_state(app_name="my_app", user_id="u1")
    session = await service.create_session(app_name="my_app", user_id="u1")
    await service.append_event(
        session,
        Event(
            author="system",
            actions=EventActions(state_delta={"user:profile": {"name": "Alice"}, "session_key": 1}),
        ),
    )
    await service.append_event(
        session, Event(author="system", actions=EventActions(state_delta={"user:counter": 2}))
    )
    state = await service.get_user_state(app_name="my_app", user_id="u1")
    assert state == {"profile": {"name": "Alice"}, "counter": 2}
    assert not await service.get_user_state(app_name="my_app", user_id="u2")
    assert not await service.get_user_state(app_name="other_app", user_id="u1")


@pytest.mark.xfail(strict=True, reason=DIFFERS["reuse"])
async def test_a_deleted_session_id_can_be_created_again(service):
    await service.create_session(app_name="my_app", user_id="u", session_id="again")
    await service.delete_session(app_name="my_app", user_id="u", session_id="again")
    await service.create_session(app_name="my_app", user_id="u", session_id="again")


# -- sessions: ours -------------------------------------------------------------------------


async def test_a_deleted_session_keeps_its_log(service, admin_memory):
    session = await service.create_session(app_name="my_app", user_id="u", session_id="gone")
    await service.append_event(session, Event(author="user", invocation_id="inv1"))
    await service.delete_session(app_name="my_app", user_id="u", session_id="gone")
    stored = await admin_memory.sessions.get(stored_id("my_app", "u", "gone"), events_after=0)
    assert stored.status == "terminated" and stored.events[0].event_type == "adk.event"


async def test_a_non_admin_service_serves_only_its_own_user(memory):
    service = AbathurSessionService(memory)  # alice in app abathur
    mine = await service.create_session(app_name="abathur", user_id="alice", state={"user:x": 1})
    assert mine.state == {"user:x": 1}
    with pytest.raises(Forbidden):
        await service.create_session(app_name="abathur", user_id="bob")
    with pytest.raises(Forbidden):
        await service.list_sessions(app_name="abathur")
    with pytest.raises(Forbidden):  # app state lives in a read-only app namespace
        await service.append_event(
            mine, Event(author="user", actions=EventActions(state_delta={"app:k": "v"}))
        )
    got = await service.get_session(app_name="abathur", user_id="alice", session_id=mine.id)
    assert got is not None and got.events == []  # the refused event was not appended


async def test_ids_that_cannot_name_a_namespace_are_refused(service):
    with pytest.raises(InvalidInput):
        await service.create_session(app_name="my app", user_id="u", state={"user:k": 1})


# -- memory (test_in_memory_memory_service.py) ------------------------------------------------


def _session(sid: str, user: str, events: Sequence[tuple[str, str, str | None]]) -> Session:
    return Session(
        app_name="test-app",
        user_id=user,
        id=sid,
        last_update_time=1000,
        events=[
            Event(
                id=event_id,
                invocation_id=f"inv-{event_id}",
                author=author,
                timestamp=12345,
                content=None if text is None else types.Content(parts=[types.Part(text=text)]),
            )
            for event_id, author, text in events
        ],
    )


SESSION_1 = _session(
    "session-1",
    "test-user",
    [
        ("event-1a", "user", "The ADK is a great toolkit."),
        ("event-1b", "user", None),
        ("event-1c", "model", "I agree. The Agent Development Kit (ADK) rocks!"),
    ],
)
SESSION_2 = _session("session-2", "test-user", [("event-2a", "user", "I like to code in Python.")])
OTHER_USER = _session("session-3", "another-user", [("event-3a", "user", "This is a secret.")])


@pytest.fixture
def memories(admin_memory):
    return AbathurMemoryService(admin_memory, search_mode="keyword")


async def _texts(memories, query, user="test-user"):
    found = await memories.search_memory(app_name="test-app", user_id=user, query=query)
    return [m.content.parts[0].text for m in found.memories]


async def test_add_session_to_memory_keeps_events_with_text(memories, admin_memory):
    await memories.add_session_to_memory(SESSION_1)
    listed = await admin_memory.memories.list("user:test-user:adk:test-app:memory")
    assert sorted(e.key for e in listed.entries) == ["event-1a", "event-1c"]
    assert {e.memory_type for e in listed.entries} == {"episodic"}


async def test_add_events_appends_and_deduplicates(memories, admin_memory):
    await memories.add_session_to_memory(SESSION_1)
    await memories.add_session_to_memory(SESSION_1)  # again: nothing new
    new = Event(
        id="event-1d",
        invocation_id="inv",
        author="user",
        timestamp=1.0,
        content=types.Content(parts=[types.Part(text="A new fact.")]),
    )
    dup = Event(
        id="event-1a",
        invocation_id="inv",
        author="user",
        timestamp=1.0,
        content=types.Content(parts=[types.Part(text="Updated duplicate text.")]),
    )
    await memories.add_events_to_memory(
        app_name="test-app", user_id="test-user", session_id="session-1", events=[new, dup]
    )
    listed = await admin_memory.memories.list("user:test-user:adk:test-app:memory")
    assert sorted(e.key for e in listed.entries) == ["event-1a", "event-1c", "event-1d"]
    first = await admin_memory.memories.history("user:test-user:adk:test-app:memory", "event-1a")
    assert [v.value["text"] for v in first] == ["The ADK is a great toolkit."]


async def test_add_session_with_no_events(memories):
    await memories.add_session_to_memory(_session("session-4", "test-user", []))
    assert await _texts(memories, "anything") == []


async def test_search_memory_simple_match(memories):
    await memories.add_session_to_memory(SESSION_1)
    await memories.add_session_to_memory(SESSION_2)
    found = await memories.search_memory(app_name="test-app", user_id="test-user", query="Python")
    assert [m.content.parts[0].text for m in found.memories] == ["I like to code in Python."]
    assert found.memories[0].author == "user"


@pytest.mark.xfail(strict=True, reason=DIFFERS["context"])
async def test_search_memory_case_insensitive_and_multiple_matches(memories):
    await memories.add_session_to_memory(SESSION_1)
    assert await _texts(memories, "development") == [
        "I agree. The Agent Development Kit (ADK) rocks!"
    ]
    assert set(await _texts(memories, "How about ADK?")) == {
        "The ADK is a great toolkit.",
        "I agree. The Agent Development Kit (ADK) rocks!",
    }


async def test_search_memory_turns_holding_the_words_come_first(memories):
    await memories.add_session_to_memory(SESSION_1)
    found = await _texts(memories, "development")
    assert found[0] == "I agree. The Agent Development Kit (ADK) rocks!"
    assert set(found) <= {
        "I agree. The Agent Development Kit (ADK) rocks!",
        "The ADK is a great toolkit.",
    }
    assert set(await _texts(memories, "How about ADK?")) == {
        "The ADK is a great toolkit.",
        "I agree. The Agent Development Kit (ADK) rocks!",
    }


async def test_search_memory_no_match(memories):
    await memories.add_session_to_memory(SESSION_1)
    assert await _texts(memories, "nonexistent") == []


async def test_search_memory_is_scoped_by_user(memories):
    await memories.add_session_to_memory(SESSION_1)
    await memories.add_session_to_memory(OTHER_USER)
    assert await _texts(memories, "secret") == []
    assert await _texts(memories, "secret", user="another-user") == ["This is a secret."]


async def test_search_memory_returns_at_most_ten(memories):
    events = [(f"note-{i}", "user", f"note {i} about work") for i in range(20)]
    await memories.add_session_to_memory(_session("s", "test-user", events))
    assert len(await _texts(memories, "work")) == 10


async def test_delete_memory_is_not_brought_back(memories):
    await memories.add_session_to_memory(SESSION_2)
    await memories.delete_memory(app_name="test-app", user_id="test-user", memory_id="event-2a")
    assert await _texts(memories, "Python") == []
    await memories.add_session_to_memory(SESSION_2)
    assert await _texts(memories, "Python") == []


@pytest.mark.parametrize(
    ("text", "query", "expected"),
    [
        ("제 이름은 민수입니다", "민수입니다", 1),
        ("Меня зовут Алексей", "Алексей", 1),
        ("太郎 works at ABC Corp", "ABC", 1),
        ("I like to code in Python.", "thon", 0),
        pytest.param(
            "私の名前は太郎です",
            "太郎",
            1,
            marks=pytest.mark.xfail(strict=True, reason=DIFFERS["cjk"]),
        ),
        pytest.param(
            "私はPythonでADKを使っています",
            "Python",
            1,
            marks=pytest.mark.xfail(strict=True, reason=DIFFERS["cjk"]),
        ),
    ],
)
async def test_search_memory_non_latin(memories, text, query, expected):
    await memories.add_session_to_memory(_session("i18n", "test-user", [("e", "user", text)]))
    assert len(await _texts(memories, query)) == expected


async def test_hybrid_search_finds_by_meaning_too(admin_memory):
    """Ours: the default mode is hybrid, so the nearest memories come back even when no
    word matches (ADK's in-memory service returns nothing then)."""
    memories = AbathurMemoryService(admin_memory)
    await memories.add_session_to_memory(SESSION_2)
    found = await memories.search_memory(app_name="test-app", user_id="test-user", query="coding")
    assert [m.id for m in found.memories] == ["event-2a"]
