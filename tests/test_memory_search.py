"""memory_search: keyword + semantic over live memories, only what the policy lets you read."""

from __future__ import annotations

import pytest

from abathur_memory.core.memory_text import memory_text
from abathur_memory.errors import Forbidden, InvalidInput

pytestmark = pytest.mark.anyio


@pytest.fixture
async def searcher(services):
    """Searches after the background indexer has caught up (as a server's would)."""
    runtime = services.runtime

    class CaughtUp:
        async def search(self, *args, **kwargs):
            await runtime.memory_indexer.catch_up()
            return await runtime.memories.search(services.principal, *args, **kwargs)

    return CaughtUp()


async def _seed(services, as_principal):
    m = services.memories
    await m.put("user:alice:prefs", "editor", {"name": "helix", "keymap": "vim-like modal"})
    await m.put("user:alice:prefs", "theme", "dark solarized theme for the terminal")
    await m.put("project:website:decisions", "framework", "static site generator written in rust")
    await m.put("temp:scratch", "todo", "buy coffee beans")
    bob = as_principal(user="bob")
    await bob.memories.put("user:bob:secrets", "editor", "emacs with evil mode")


async def test_finds_by_keyword_and_meaning(searcher, services, as_principal):
    await _seed(services, as_principal)
    for mode in ("hybrid", "keyword", "semantic"):
        result = await searcher.search("which editor keymap", mode=mode)
        assert result.mode_used == mode
        assert result.results[0].key == "editor"
        assert result.results[0].namespace == "user:alice:prefs"


async def test_never_returns_what_the_caller_cannot_read(searcher, services, as_principal):
    await _seed(services, as_principal)
    result = await searcher.search("emacs evil mode editor")
    assert "user:bob:secrets" not in {h.namespace for h in result.results}
    with pytest.raises(Forbidden):
        await searcher.search("emacs", prefix="user:bob")


async def test_prefix_narrows_the_search(searcher, services, as_principal):
    await _seed(services, as_principal)
    result = await searcher.search("rust generator", prefix="project:website")
    assert {h.namespace for h in result.results} == {"project:website:decisions"}
    temp = await searcher.search("coffee", prefix="temp")
    assert [h.key for h in temp.results] == ["todo"]


async def test_follows_updates_and_deletes(searcher, services):
    m = services.memories
    await m.put("user:alice:notes", "trip", "visit lisbon in may")
    assert (await searcher.search("lisbon")).results
    await m.put("user:alice:notes", "trip", "visit porto in june")
    result = await searcher.search("lisbon porto", mode="keyword")
    assert [(h.key, h.version) for h in result.results] == [("trip", 2)]
    await m.delete("user:alice:notes", "trip")
    assert all(h.key != "trip" for h in (await searcher.search("porto")).results)
    await m.restore("user:alice:notes", "trip")
    assert (await searcher.search("porto", mode="keyword")).results[0].version == 3


async def test_seeded_app_memories_are_searchable(searcher):
    result = await searcher.search("memory lifecycle policies ttl", mode="keyword")
    assert any(h.key == "memory_lifecycle_policies" for h in result.results)


async def test_session_namespaces_of_the_owner_only(searcher, services, as_principal):
    mine = await services.sessions.create()
    bob = as_principal(user="bob")
    bobs = await bob.sessions.create()
    await services.memories.put(f"session:{mine.id}:notes", "k", "shared whiteboard alpha")
    await bob.memories.put(f"session:{bobs.id}:notes", "k", "shared whiteboard beta")
    result = await searcher.search("shared whiteboard", mode="keyword")
    assert [h.namespace for h in result.results] == [f"session:{mine.id}:notes"]


async def test_bad_queries(searcher):
    with pytest.raises(InvalidInput):
        await searcher.search("")
    with pytest.raises(InvalidInput):
        await searcher.search("x", k=0)
    with pytest.raises(InvalidInput):
        await searcher.search("x", prefix="nonsense:")


def test_memory_text_flattens_json():
    text = memory_text("user_prefs", {"editor": {"name": "helix"}, "tags": ["a", 2], "x": None})
    assert text == "user prefs editor name helix tags a 2 x"
