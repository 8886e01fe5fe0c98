"""Contract tests of the OpenAI Agents SDK session adapter, on both backends.

Modelled on the SDK's own session tests (openai-agents 0.24, tests/memory/test_session.py
and tests/memory/test_session_limit.py, written for ``SQLiteSession``): the same cases,
run against ``AbathurSession``. Cases about SQLiteSession's own machinery (thread-local
connections, file locks, corrupt JSON rows, rollbacks of its sqlite3 transactions, a
closed session) have no counterpart here and are left out. Then the cases that are ours:
the log keeps popped and cleared items, sessions are the principal's, writes are audited.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest
from adapter_fixtures import memory_fixture  # noqa: F401

agents = pytest.importorskip("agents")

from agents import (  # noqa: E402
    Agent,
    Runner,
    RunResult,
    RunResultStreaming,
    SessionSettings,
    set_tracing_disabled,
)
from agents.items import TResponseInputItem  # noqa: E402
from agents.testing import ScriptedModel, assistant_message  # noqa: E402

from abathur_memory.adapters.openai_agents import AbathurSession  # noqa: E402
from abathur_memory.api import Memory  # noqa: E402
from abathur_memory.errors import Conflict, Forbidden, NotFound  # noqa: E402

pytestmark = pytest.mark.anyio
set_tracing_disabled(True)


def _session(memory: Memory, session_id: str = "test_session", **kwargs: Any) -> AbathurSession:
    return AbathurSession(session_id, memory, **kwargs)


def _content(item: TResponseInputItem | None) -> str:
    """What a stored message says: every item these tests add is a text message (the SDK
    types an item as the union of every kind, most of which have no ``content``)."""
    assert item is not None
    content = dict(item)["content"]
    assert isinstance(content, str)
    return content


async def _run(
    runner_method: str, agent: Agent[Any], text: str, session: AbathurSession
) -> RunResult | RunResultStreaming:
    if runner_method == "run":
        return await Runner.run(agent, text, session=session)
    result = Runner.run_streamed(agent, text, session=session)
    async for _ in result.stream_events():
        pass
    return result


# -- the SDK's cases ----------------------------------------------------------------------


@pytest.mark.parametrize("runner_method", ["run", "run_streamed"])
async def test_session_memory_basic_functionality(memory, runner_method):
    session = _session(memory, "test_session_123")
    model = ScriptedModel()
    agent = Agent(name="test", model=model)
    model.enqueue([assistant_message("San Francisco")])
    first = await _run(runner_method, agent, "What city is the Golden Gate Bridge in?", session)
    assert first.final_output == "San Francisco"
    model.enqueue([assistant_message("California")])
    second = await _run(runner_method, agent, "What state is it in?", session)
    assert second.final_output == "California"
    assert len(model.calls[-1].input) > 1  # the second turn saw the first


@pytest.mark.parametrize("runner_method", ["run", "run_streamed"])
async def test_session_memory_different_sessions(memory, runner_method):
    model = ScriptedModel()
    agent = Agent(name="test", model=model)
    one, two = _session(memory, "session_1"), _session(memory, "session_2")
    model.enqueue([assistant_message("I like cats")])
    await _run(runner_method, agent, "I like cats", one)
    model.enqueue([assistant_message("I like dogs")])
    await _run(runner_method, agent, "I like dogs", two)
    model.enqueue([assistant_message("Yes, you mentioned cats")])
    await _run(runner_method, agent, "What did I say I like?", one)
    texts = str(model.calls[-1].input)
    assert "cats" in texts and "dogs" not in texts


async def test_session_memory_direct(memory):
    session = _session(memory, "direct_test")
    items: list[TResponseInputItem] = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there!"},
    ]
    await session.add_items(items)
    assert await session.get_items() == items
    await session.clear_session()
    assert await session.get_items() == []


async def test_session_memory_pop_item(memory):
    session = _session(memory, "pop_test")
    assert await session.pop_item() is None
    items: list[TResponseInputItem] = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there!"},
        {"role": "user", "content": "How are you?"},
    ]
    await session.add_items(items)
    assert len(await session.get_items()) == 3
    assert await session.pop_item() == items[2]
    assert _content((await session.get_items())[-1]) == "Hi there!"
    assert await session.pop_item() == items[1]
    assert await session.pop_item() == items[0]
    assert await session.pop_item() is None
    assert await session.get_items() == []


async def test_session_memory_pop_different_sessions(memory):
    one, two = _session(memory, "session_1"), _session(memory, "session_2")
    await one.add_items([{"role": "user", "content": "Session 1 message"}])
    await two.add_items(
        [
            {"role": "user", "content": "Session 2 message 1"},
            {"role": "user", "content": "Session 2 message 2"},
        ]
    )
    assert _content(await two.pop_item()) == "Session 2 message 2"
    assert [_content(i) for i in await one.get_items()] == ["Session 1 message"]
    assert [_content(i) for i in await two.get_items()] == ["Session 2 message 1"]


TURNS: tuple[tuple[Literal["user", "assistant"], str], ...] = (
    ("user", "Message"),
    ("assistant", "Response"),
)


async def test_session_get_items_with_limit(memory):
    session = _session(memory, "count_test")
    items: list[TResponseInputItem] = [
        {"role": role, "content": f"{word} {n}"} for n in (1, 2, 3) for role, word in TURNS
    ]
    await session.add_items(items)
    assert await session.get_items() == items
    assert await session.get_items(limit=2) == items[-2:]
    assert await session.get_items(limit=4) == items[-4:]
    assert await session.get_items(limit=10) == items
    assert await session.get_items(limit=0) == []


async def test_session_unicode_content(memory):
    session = _session(memory, "unicode_test")
    items: list[TResponseInputItem] = [
        {"role": "user", "content": "こんにちは"},
        {"role": "assistant", "content": "😊👍"},
    ]
    await session.add_items(items)
    assert await session.get_items() == items


async def test_session_special_characters_and_sql_injection(memory):
    session = _session(memory, "injection_test'; DROP TABLE sessions; --")
    items: list[TResponseInputItem] = [
        {"role": "user", "content": "O'Reilly"},
        {"role": "assistant", "content": "DROP TABLE sessions; --"},
        {"role": "user", "content": '"quotes" and \\backslashes\\ and %_ wildcards'},
    ]
    await session.add_items(items)
    assert await session.get_items() == items


async def test_session_concurrent_access(memory):
    session = _session(memory, "concurrent_test")

    async def add(n: int) -> None:
        await session.add_items([{"role": "user", "content": f"Message {n}"}])

    await asyncio.gather(*(add(n) for n in range(10)))
    contents = {_content(i) for i in await session.get_items()}
    assert contents == {f"Message {n}" for n in range(10)}


async def test_session_settings_default(memory):
    settings = _session(memory).session_settings
    assert settings is not None and settings.limit is None


async def test_get_items_uses_session_settings_limit(memory):
    session = _session(memory, "settings", session_settings=SessionSettings(limit=3))
    items: list[TResponseInputItem] = [{"role": "user", "content": f"m{n}"} for n in range(5)]
    await session.add_items(items)
    assert await session.get_items() == items[-3:]


async def test_get_items_explicit_limit_overrides_session_settings(memory):
    session = _session(memory, "override", session_settings=SessionSettings(limit=5))
    items: list[TResponseInputItem] = [{"role": "user", "content": f"m{n}"} for n in range(10)]
    await session.add_items(items)
    assert await session.get_items(limit=2) == items[-2:]


async def test_runner_session_limit_parameter(memory):
    session = _session(memory, "runner_limit")
    await session.add_items([{"role": "user", "content": f"old {n}"} for n in range(6)])
    model = ScriptedModel([[assistant_message("ok")]])
    agent = Agent(name="test", model=model)
    from agents import RunConfig

    await Runner.run(
        agent,
        "new",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=2)),
    )
    sent = [i.get("content") for i in model.calls[-1].input if isinstance(i, dict)]
    assert "old 0" not in sent and "old 5" in sent and "new" in sent


# -- ours -----------------------------------------------------------------------------------


async def test_nothing_is_destroyed_popped_and_cleared_items_stay_in_the_log(memory):
    """Deliberate difference: SQLiteSession deletes rows; here pop and clear are events,
    so the conversation's history stays auditable."""
    session = _session(memory, "kept")
    await session.add_items([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    await session.pop_item()
    await session.clear_session()
    await session.add_items([{"role": "user", "content": "c"}])
    assert await session.get_items() == [{"role": "user", "content": "c"}]
    stored = await memory.sessions.get(session.abathur_session_id, events_after=0, events_limit=50)
    assert [(e.event_type, e.content) for e in stored.events] == [
        ("agents.item", {"role": "user", "content": "a"}),
        ("agents.item", {"role": "user", "content": "b"}),
        ("agents.pop", {"seq": 2}),
        ("agents.clear", {"items_before": 4}),
        ("agents.item", {"role": "user", "content": "c"}),
    ]
    assert [e.actor for e in stored.events][:2] == ["user", "user"]


async def test_reads_across_many_pages_of_events(memory):
    session = _session(memory, "long")
    items: list[TResponseInputItem] = [{"role": "user", "content": f"m{n}"} for n in range(2300)]
    for start in range(0, len(items), 500):
        await session.add_items(items[start : start + 500])
    await session.pop_item()
    assert await session.get_items() == items[:-1]
    assert await session.get_items(limit=1500) == items[-1501:-1]


async def test_concurrent_pops_never_take_the_same_item(memory):
    session = _session(memory, "pops")
    items: list[TResponseInputItem] = [{"role": "user", "content": f"m{n}"} for n in range(6)]
    await session.add_items(items)
    popped = await asyncio.gather(*(session.pop_item() for _ in range(4)))
    assert sorted(_content(p) for p in popped) == ["m2", "m3", "m4", "m5"]
    assert await session.get_items() == items[:2]


async def test_another_principal_cannot_read_or_write_the_session(memory):
    await _session(memory, "private").add_items([{"role": "user", "content": "secret"}])
    # bob is another principal of the same database; alice (not an admin) cannot become
    # him, so he is opened from the runtime's services directly.
    from abathur_memory.api import Memory, _Shared
    from abathur_memory.core.principal import Principal

    bob = Memory(_Shared(memory.runtime), Principal(user="bob", app="abathur"))
    theirs = _session(bob, "private")
    assert await theirs.get_items() == []
    assert await theirs.pop_item() is None
    with pytest.raises(Conflict):  # the id is taken: bob cannot write into alice's log
        await theirs.add_items([{"role": "user", "content": "intrusion"}])
    assert [_content(i) for i in await _session(memory, "private").get_items()] == ["secret"]
    with pytest.raises(Forbidden):
        memory.as_principal(user="bob")


async def test_a_terminated_session_refuses_new_items(memory):
    session = _session(memory, "ended")
    await session.add_items([{"role": "user", "content": "bye"}])
    await memory.sessions.set_status(session.abathur_session_id, "terminated")
    with pytest.raises(Conflict):
        await session.add_items([{"role": "user", "content": "more"}])
    with pytest.raises(Conflict):
        await session.pop_item()
    assert await session.get_items() == [{"role": "user", "content": "bye"}]


async def test_a_missing_session_reads_empty(memory):
    stored = _session(memory, "never").abathur_session_id
    with pytest.raises(NotFound):
        await memory.sessions.get(stored)
    assert await _session(memory, "never").get_items() == []
    await _session(memory, "never").clear_session()  # nothing to clear, nothing created
    with pytest.raises(NotFound):
        await memory.sessions.get(stored)


async def test_a_session_name_maps_to_one_uuid_and_a_uuid_is_kept(memory):
    """Session ids are UUIDs: a name is the UUID it names (the same name, the same
    session), a UUID names itself (an existing session can be continued)."""
    named = _session(memory, "coffee-chat")
    assert named.abathur_session_id == _session(memory, "coffee-chat").abathur_session_id
    assert named.abathur_session_id != _session(memory, "tea-chat").abathur_session_id
    await named.add_items([{"role": "user", "content": "black"}])
    again = _session(memory, named.abathur_session_id)
    assert again.abathur_session_id == named.abathur_session_id
    assert await again.get_items() == [{"role": "user", "content": "black"}]
    stored = await memory.sessions.get(named.abathur_session_id)
    assert stored.metadata["agents_session_id"] == "coffee-chat"
