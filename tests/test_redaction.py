"""Redaction and erasure (issue 15): memory_redact erases a version's content and keeps its
record; `abathur-memory erase --user U` (admin) removes a principal's memories, sessions
and tasks and keeps the audit of it."""

from __future__ import annotations

import asyncio
import json

import pytest
from acting import Acting
from cli_helpers import run_cli
from conftest import settings_for
from mcp_helpers import call, connected, text_of

from abathur_memory.core.principal import Principal
from abathur_memory.errors import Forbidden, InvalidInput, NotFound
from abathur_memory.runtime import open_runtime

pytestmark = pytest.mark.anyio

NS = "user:alice:secrets"


async def _search(services: Acting, query: str, mode: str) -> set[str]:
    await services.runtime.memory_indexer.catch_up()
    found = await services.runtime.memories.search(services.principal, query, mode=mode)
    return {h.key for h in found.results}


async def test_redact_erases_content_keeps_the_record_and_the_search_forgets(services, raw):
    m = services.memories
    await m.put(NS, "door", "the door code is 4711 quokka", metadata={"source": "chat"})
    await m.put(NS, "door", "the door code changed to 9922")
    await m.put(NS, "other", "quokka sightings near the harbour")
    assert "door" in await _search(services, "quokka door code", "keyword")
    before = await m.get(NS, "door", version=1)
    # the live version first: its text leaves the index
    live = await services.redaction.redact(services.principal, NS, "door", 2)
    assert live.value is None and live.metadata == {} and live.redacted_by == "user:alice"
    assert live.redacted_at is not None and live.version == 2
    for mode in ("keyword", "semantic", "hybrid"):
        assert "door" not in await _search(services, "changed 9922", mode), mode
    old = await services.redaction.redact(services.principal, NS, "door", 1)
    assert old.created_by == before.created_by and old.created_at == before.created_at
    assert old.value is None
    history = await m.history(NS, "door")
    assert [(v.version, v.value, v.redacted_by) for v in history] == [
        (1, None, "user:alice"),
        (2, None, "user:alice"),
    ]
    rows = await raw.fetchall(
        "SELECT count(*) FROM memory_entries WHERE namespace = ? AND key = ?", (NS, "door")
    )
    assert rows[0][0] == 2  # the records stay
    stored = await raw.fetchall("SELECT CAST(value AS TEXT) FROM memory_entries WHERE key = 'door'")
    assert all("4711" not in r[0] and "9922" not in r[0] for r in stored)
    again = await services.redaction.redact(services.principal, NS, "door", 1)
    assert again.redacted_at == old.redacted_at  # redacting twice changes nothing
    audited = await raw.fetchall(
        "SELECT actor FROM audit WHERE action_type = 'memory_redact' ORDER BY id"
    )
    assert [r[0] for r in audited] == ["user:alice", "user:alice"]
    assert await m.get(NS, "other")  # the other memory is untouched
    with pytest.raises(NotFound):
        await services.redaction.redact(services.principal, NS, "door", 3)
    with pytest.raises(InvalidInput):
        await services.redaction.redact(services.principal, NS, "door", 0)


async def test_redact_needs_write_access_and_the_denial_is_audited(services, as_principal, raw):
    bob = as_principal(user="bob", app="abathur")
    await bob.memories.put("user:bob:notes", "n", "bob's note")
    with pytest.raises(Forbidden):
        await services.redaction.redact(services.principal, "user:bob:notes", "n", 1)
    await services.recorder.flush()
    denied = await raw.fetchall(
        "SELECT count(*) FROM audit WHERE action_type = 'memory_denied'"
        " AND memory_namespace = 'user:bob:notes'"
    )
    assert denied[0][0] == 1
    assert (await bob.memories.get("user:bob:notes", "n")).value == "bob's note"


async def test_erase_user_removes_its_memories_sessions_and_tasks_only(services, as_principal, raw):
    admin = as_principal(user="root", app="abathur", admin=True)
    bob = as_principal(user="bob", app="abathur")
    await services.memories.put(NS, "a", "alice 1")
    await services.memories.put(NS, "a", "alice 2")
    await services.memories.put(NS, "b", "alice b")
    session = await services.sessions.create()
    await services.sessions.append(session.id, "message", "user", "hello")
    await services.memories.put(f"session:{session.id}:notes", "s", "in alice's session")
    task = await services.tasks.create("alice's task", session_id=session.id)
    await bob.memories.put("user:bob:notes", "n", "bob's")
    bob_session = await bob.sessions.create()
    await services.links.link(services.principal, "related", NS, "a", NS, "b")
    with pytest.raises(Forbidden):
        await services.redaction.erase_user(services.principal, "bob")
    counts = await admin.redaction.erase_user(admin.principal, "alice")
    assert counts["memory_versions"] == 4 and counts["sessions"] == 1
    assert counts["session_events"] == 1 and counts["tasks"] == 1 and counts["links"] == 1
    left = await raw.fetchall(
        "SELECT count(*) FROM memory_entries WHERE namespace LIKE 'user:alice%'"
        " OR namespace LIKE 'session:%'"
    )
    assert left[0][0] == 0
    assert (await raw.fetchone("SELECT count(*) FROM tasks WHERE id = ?", (task.id,)))[0] == 0
    assert (await bob.memories.get("user:bob:notes", "n")).value == "bob's"
    assert (await bob.sessions.get(bob_session.id)).id == bob_session.id
    erased = await raw.fetchall(
        "SELECT actor, CAST(action_data AS TEXT) FROM audit WHERE action_type = 'erase_user'"
    )
    assert len(erased) == 1 and erased[0][0] == "user:root"
    assert json.loads(erased[0][1])["memory_versions"] == 4
    await services.recorder.flush()
    denied = await raw.fetchall(
        "SELECT count(*) FROM audit WHERE action_type = 'memory_denied' AND actor = 'user:alice'"
    )
    assert denied[0][0] == 1
    with pytest.raises(InvalidInput):
        await admin.redaction.erase_user(admin.principal, "alice:x")


async def test_memory_redact_tool(db_url):
    async with connected(db_url) as client:
        await call(client, "memory_put", namespace=NS, key="pin", value="1234")
        got = await call(client, "memory_redact", namespace=NS, key="pin", version=1)
        assert got["redacted_by"] == "user:alice" and got["version"] == 1
        read = await call(client, "memory_get", namespace=NS, key="pin")
        assert read["value"] is None and read["redacted_at"] == got["redacted_at"]
        bad = await client.call_tool("memory_redact", {"namespace": NS, "key": "pin", "version": 9})
        assert bad.is_error and text_of(bad).startswith("not_found")


def test_erase_command(db_url, capsys):
    async def seeded() -> None:
        alice = Principal(user="alice", app="abathur")
        async with open_runtime(settings_for(db_url)) as runtime:
            await runtime.memories.put(alice, NS, "k", "alice's")
            await runtime.sessions.create(alice)

    asyncio.run(seeded())
    result = run_cli(capsys, "erase", "--db", str(db_url), "--user", "alice", "--yes")
    assert result.code == 1 and "only an admin may erase" in result.err
    result = run_cli(
        capsys, "erase", "--db", str(db_url), "--user", "alice", "--admin", "--yes", "--json"
    )
    assert result.code == 0, result.err
    counts = json.loads(result.out)
    assert counts["memory_versions"] == 1 and counts["sessions"] == 1
