"""The Python API: the tools' services bound to a principal, on both backends."""

from __future__ import annotations

import pytest
from adapter_fixtures import admin_memory_fixture, memory_fixture  # noqa: F401
from backends import Raw

import abathur_memory
from abathur_memory.errors import Conflict, Forbidden

pytestmark = pytest.mark.anyio


async def test_open_puts_versions_and_compare_and_set(db_url):
    async with abathur_memory.open(db=db_url, user="alice", embedder="fake") as mem:
        first = await mem.memories.put("user:alice:prefs", "editor", {"name": "vim"})
        await mem.memories.put("user:alice:prefs", "editor", {"name": "helix"}, expected_version=1)
        with pytest.raises(Conflict):
            await mem.memories.put("user:alice:prefs", "editor", {"name": "x"}, expected_version=1)
        history = await mem.memories.history("user:alice:prefs", "editor")
        assert first.version == 1 and [v.value["name"] for v in history] == ["vim", "helix"]
        assert history[-1].created_by == "user:alice"


async def test_search_sees_every_write_before_it(memory):
    await memory.memories.put("user:alice:notes", "trip", "visit lisbon in may")
    found = await memory.memories.search("lisbon", prefix="user:alice")
    assert [h.key for h in found.results] == ["trip"]
    await memory.memories.put("user:alice:notes", "trip", "visit porto in june")
    found = await memory.memories.search("porto", mode="keyword")
    assert [(h.key, h.version) for h in found.results] == [("trip", 2)]
    assert found.pending == 0


async def test_search_and_list_take_the_tools_filters(memory):
    """memories.search passes memory_search's other arguments on (valid_at here), and
    memories.list takes memory_list's (as_of, valid_at)."""
    await memory.memories.put("user:alice:jobs", "acme", "works at acme", valid_to="2020-01-01")
    await memory.memories.put("user:alice:jobs", "globex", "works at globex")
    found = await memory.memories.search("works", mode="keyword", valid_at="2019-01-01")
    assert {h.key for h in found.results} == {"acme", "globex"}
    found = await memory.memories.search("works", mode="keyword")
    assert [h.key for h in found.results] == ["globex"]
    listed = await memory.memories.list("user:alice:jobs", valid_at="2019-01-01")
    assert [e.key for e in listed.entries] == ["acme", "globex"]
    assert (await memory.memories.list("user:alice:jobs", as_of="2000-01-01")).entries == []


async def test_access_rules_and_acting_for_others(memory, admin_memory):
    with pytest.raises(Forbidden):
        await memory.memories.put("user:bob:prefs", "k", 1)
    with pytest.raises(Forbidden):
        memory.as_principal(user="bob")
    assert memory.as_principal().principal == memory.principal
    bob = admin_memory.as_principal(user="bob", app="abathur")
    assert not bob.principal.admin
    await bob.memories.put("user:bob:prefs", "k", 1)
    with pytest.raises(Forbidden):  # bob acts with bob's rules, not the admin's
        await bob.memories.put("user:carol:prefs", "k", 1)
    await memory.runtime.recorder.flush()
    rows = await Raw(memory.runtime.store).fetchall(
        "SELECT actor FROM audit WHERE action_type = 'principal_denied'"
    )
    assert [row[0] for row in rows] == ["user:alice"]  # the refusal to act as bob
