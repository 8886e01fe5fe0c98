"""Sessions: lifecycle, events with sequence numbers, atomic state deltas, listing."""

from __future__ import annotations

import asyncio

import pytest

from abathur_memory.errors import Conflict, Forbidden, InvalidInput, NotFound

MISSING = "00000000-0000-4000-8000-000000000000"  # a well-formed id that names nothing

pytestmark = pytest.mark.anyio


async def test_create_and_get(services):
    s = await services.sessions.create(state={"step": 0}, metadata={"client": "test"})
    assert (s.status, s.user_id, s.app_name, s.project_id) == (
        "created",
        "alice",
        "abathur",
        "website",
    )
    got = await services.sessions.get(s.id)
    assert got.state == {"step": 0} and got.metadata == {"client": "test"} and got.events == []


async def test_append_numbers_events_and_merges_state(services):
    sessions = services.sessions
    s = await sessions.create(state={"a": 1, "drop": True})
    event, after = await sessions.append(s.id, "message", "user", {"text": "hi"})
    assert event.seq == 1 and after.status == "active"  # the first event activates it
    _, after = await sessions.append(
        s.id, "tool", "agent", {"name": "x"}, state_delta={"b": {"c": 2}, "drop": None}
    )
    assert after.state == {"a": 1, "b": {"c": 2}}
    assert after.last_seq == 2
    got = await sessions.get(s.id)
    assert [e.seq for e in got.events] == [1, 2]
    assert got.events[1].state_delta == {"b": {"c": 2}, "drop": None}


async def test_expected_seq_rejects_a_stale_view(services, raw):
    s = await services.sessions.create()
    await services.sessions.append(s.id, "m", "u", 1, expected_seq=0)
    with pytest.raises(Conflict, match="at seq 1, not 0"):
        await services.sessions.append(s.id, "m", "u", 2, expected_seq=0, state_delta={"x": 1})
    got = await services.sessions.get(s.id)
    assert got.last_seq == 1 and got.state == {}


async def test_concurrent_appends_get_distinct_sequence_numbers(services):
    s = await services.sessions.create()
    results = await asyncio.gather(
        *(services.sessions.append(s.id, "m", "u", i) for i in range(40))
    )
    assert sorted(e.seq for e, _ in results) == list(range(1, 41))


async def test_event_ranges(services):
    sessions = services.sessions
    s = await sessions.create()
    for i in range(10):
        await sessions.append(s.id, "m", "u", i)
    assert [e.content for e in await sessions.events(s.id, 3, 5)] == [2, 3, 4]
    tail = await sessions.get(s.id, events_after=-1, events_limit=3)
    assert [e.seq for e in tail.events] == [8, 9, 10]
    page = await sessions.get(s.id, events_after=4, events_limit=2)
    assert [e.seq for e in page.events] == [5, 6]
    with pytest.raises(InvalidInput):
        await sessions.events(s.id, 5, 3)


async def test_lifecycle_transitions(services):
    sessions = services.sessions
    s = await sessions.create()
    for status in ("active", "paused", "active", "terminated", "archived"):
        s = await sessions.set_status(s.id, status)
        assert s.status == status
    assert s.terminated_at and s.archived_at
    with pytest.raises(Conflict, match="cannot go from archived to active"):
        await sessions.set_status(s.id, "active")


@pytest.mark.parametrize(
    ("path", "illegal"),
    [(["terminated"], "active"), (["active"], "created"), (["active"], "archived")],
)
async def test_illegal_transitions_are_refused(services, path, illegal):
    s = await services.sessions.create()
    for status in path:
        await services.sessions.set_status(s.id, status)
    with pytest.raises(Conflict, match=f"to {illegal}"):
        await services.sessions.set_status(s.id, illegal)
    assert (await services.sessions.get(s.id)).status == path[-1]


async def test_no_appends_to_terminated_or_archived(services):
    s = await services.sessions.create()
    await services.sessions.set_status(s.id, "terminated")
    with pytest.raises(Conflict, match="terminated"):
        await services.sessions.append(s.id, "m", "u", 1)
    await services.sessions.set_status(s.id, "archived")
    with pytest.raises(Conflict, match="archived"):
        await services.sessions.append(s.id, "m", "u", 1)
    with pytest.raises(Conflict, match="frozen"):
        await services.sessions.update_state(s.id, {"x": 1})


async def test_update_state_merges_or_replaces(services):
    s = await services.sessions.create(state={"a": 1, "b": 2})
    merged = await services.sessions.update_state(s.id, {"b": None, "c": 3})
    assert merged.state == {"a": 1, "c": 3}
    replaced = await services.sessions.update_state(s.id, {"z": 0}, replace=True)
    assert replaced.state == {"z": 0}


async def test_list_is_newest_first_paged_and_private(services, as_principal):
    ids = [(await services.sessions.create()).id for _ in range(5)]
    await services.sessions.set_status(ids[0], "active")
    await as_principal(user="bob").sessions.create()
    page = await services.sessions.list(limit=2)
    seen = [s.id for s in page.sessions]
    while page.next_cursor:
        page = await services.sessions.list(limit=2, cursor=page.next_cursor)
        seen += [s.id for s in page.sessions]
    assert seen == list(reversed(ids))
    active = await services.sessions.list(status="active")
    assert [s.id for s in active.sessions] == [ids[0]]
    with pytest.raises(Forbidden):
        await services.sessions.list(user_id="bob")


async def test_other_users_sessions_look_missing(services, as_principal):
    bobs = await as_principal(user="bob").sessions.create()
    with pytest.raises(NotFound):
        await services.sessions.get(bobs.id)
    with pytest.raises(NotFound):
        await services.sessions.append(bobs.id, "m", "u", 1)
    with pytest.raises(Forbidden, match="another user"):
        await services.sessions.create(user_id="bob")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s, sid: s.set_status(sid, "sleeping"), InvalidInput, "status must be one of"),
        (lambda s, sid: s.append(sid, "", "u", 1), InvalidInput, "event_type"),
        (lambda s, sid: s.append(sid, "m", "u", 1, state_delta=[1]), InvalidInput, "JSON object"),
        (lambda s, sid: s.append(sid, "m", "u", float("inf")), InvalidInput, "NaN"),
        (lambda s, sid: s.append(MISSING, "m", "u", 1), NotFound, "no session"),
        (lambda s, sid: s.append("nope", "m", "u", 1), InvalidInput, "session_id must be an id"),
        (lambda s, sid: s.get(sid + "x"), InvalidInput, "session_id must be an id"),
        (lambda s, sid: s.update_state(sid, "not a dict"), InvalidInput, "JSON object"),
        (lambda s, sid: s.create(state={"x": float("nan")}), InvalidInput, "NaN"),
        (lambda s, sid: s.get(sid, events_limit=5000), InvalidInput, "events_limit"),
        (lambda s, sid: s.list(status="zombie"), InvalidInput, "status"),
        (lambda s, sid: s.list(cursor="###"), InvalidInput, "cursor"),
    ],
)
async def test_bad_input_changes_nothing(services, raw, call, error, message):
    s = await services.sessions.create(state={"keep": 1})
    snapshot = dict(await raw.fetchone("SELECT * FROM sessions WHERE id = ?", (s.id,)))
    with pytest.raises(error, match=message):
        await call(services.sessions, s.id)
    assert dict(await raw.fetchone("SELECT * FROM sessions WHERE id = ?", (s.id,))) == snapshot
    assert (await raw.fetchone("SELECT count(*) FROM session_events"))[0] == 0
