"""Sessions to memories (issue 15): session_promote turns chosen events into memories in a
namespace the caller may write, linked derived_from to the session and seq; promoting the
same events twice makes nothing new."""

from __future__ import annotations

import pytest
from acting import Acting
from mcp_helpers import call, connected, text_of

from abathur_memory.errors import Forbidden, InvalidInput, NotFound

pytestmark = pytest.mark.anyio

NS = "user:alice:kept"


async def _session_with_events(services: Acting) -> str:
    session = await services.sessions.create()
    for n, text in enumerate(["we chose postgres", "because of pgvector", "lunch?"], 1):
        await services.sessions.append(session.id, "message", "user", {"text": text, "n": n})
    return session.id


async def test_promote_writes_memories_with_links_once(services, raw):
    session_id = await _session_with_events(services)
    done = await services.promotion.promote(services.principal, session_id, NS, 1, 2)
    assert (done.created, done.unchanged, done.links_created) == (2, 0, 2)
    first = await services.memories.get(NS, done.keys[0])
    assert first.memory_type == "episodic" and first.value["content"]["text"] == "we chose postgres"
    assert first.metadata == {"session_id": session_id, "seq": 1}
    links = await services.links.readable_links(services.principal, NS, done.keys[1])
    assert [(x.link_type, x.to_session, x.seq_start, x.seq_end) for x in links] == [
        ("derived_from", session_id, 2, 2)
    ]
    versions = (await raw.fetchone("SELECT count(*) FROM memory_entries"))[0]
    again = await services.promotion.promote(services.principal, session_id, NS, 1, 2)
    assert (again.created, again.unchanged, again.links_created) == (0, 2, 0)
    assert again.keys == done.keys
    assert (await raw.fetchone("SELECT count(*) FROM memory_entries"))[0] == versions
    assert (await raw.fetchone("SELECT count(*) FROM memory_links"))[0] == 2
    published = await raw.fetchall(
        "SELECT count(*) FROM audit WHERE memory_operation_type = 'publish'"
    )
    assert published[0][0] == 2


async def test_promote_checks_owner_namespace_and_range(services, as_principal, raw):
    session_id = await _session_with_events(services)
    bob = as_principal(user="bob", app="abathur")
    with pytest.raises(Forbidden):  # not bob's session
        await bob.promotion.promote(bob.principal, session_id, "user:bob:kept", 1, 1)
    with pytest.raises(Forbidden):  # not alice's to write
        await services.promotion.promote(services.principal, session_id, "user:bob:x", 1, 1)
    with pytest.raises(NotFound):
        await services.promotion.promote(services.principal, session_id, NS, 7, 9)
    with pytest.raises(InvalidInput):
        await services.promotion.promote(services.principal, session_id, NS, 3, 1)
    with pytest.raises(InvalidInput):
        await services.promotion.promote(services.principal, "not-a-session", NS, 1, 1)
    await services.recorder.flush()
    await bob.recorder.flush()
    denied = await raw.fetchall(
        "SELECT count(*) FROM audit WHERE action_type LIKE '%denied'"
        " AND CAST(action_data AS TEXT) LIKE '%promote%'"
    )
    assert denied[0][0] == 2
    assert (await raw.fetchone("SELECT count(*) FROM memory_links"))[0] == 0


async def test_session_promote_tool(db_url):
    async with connected(db_url) as client:
        session = await call(client, "session_create")
        await call(
            client,
            "session_append",
            session_id=session["id"],
            event_type="m",
            actor="user",
            content="remember the dentist on friday",
        )
        done = await call(
            client,
            "session_promote",
            session_id=session["id"],
            namespace=NS,
            seq_start=1,
            seq_end=1,
        )
        assert done["created"] == 1 and done["unchanged"] == 0
        got = await call(client, "memory_get", namespace=NS, key=done["keys"][0])
        assert got["links"][0]["to_session"] == session["id"]
        again = await call(
            client,
            "session_promote",
            session_id=session["id"],
            namespace=NS,
            seq_start=1,
            seq_end=1,
        )
        assert again["created"] == 0 and again["unchanged"] == 1
        bad = await client.call_tool(
            "session_promote",
            {"session_id": session["id"], "namespace": NS, "seq_start": 5, "seq_end": 6},
        )
        assert bad.is_error and text_of(bad).startswith("not_found")
