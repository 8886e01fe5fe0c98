"""Links between memories (issue 15): typed and directed, namespace rules on both ends,
audited (denials too), shown both ways by memory_get and memory_history, never deleted."""

from __future__ import annotations

import pytest
from mcp_helpers import connected, text_of

from abathur_memory.errors import Forbidden, InvalidInput, NotFound

pytestmark = pytest.mark.anyio

NS = "user:alice:facts"


async def test_link_is_written_audited_and_shown_both_ways(services, raw):
    await services.memories.put(NS, "city_old", "lives in Berlin")
    await services.memories.put(NS, "city_new", "moved to Lisbon")
    link, created = await services.links.link(
        services.principal, "supersedes", NS, "city_new", NS, "city_old", "moved"
    )
    assert created and link.link_type == "supersedes"
    assert (link.from_key, link.to_key, link.from_version, link.to_version) == (
        "city_new",
        "city_old",
        1,
        1,
    )
    assert link.created_by == "user:alice" and link.holds_until is not None
    again, created_again = await services.links.link(
        services.principal, "supersedes", NS, "city_new", NS, "city_old"
    )
    assert not created_again and again.id == link.id
    for key in ("city_new", "city_old"):
        shown = await services.links.readable_links(services.principal, NS, key)
        assert [s.id for s in shown] == [link.id]
    audited = await raw.fetchall(
        "SELECT action_type, memory_namespace, actor FROM audit"
        " WHERE action_type IN ('memory_link', 'memory_unlink') ORDER BY id"
    )
    assert [tuple(r) for r in audited] == [("memory_link", NS, "user:alice")]
    removed = await services.links.unlink(services.principal, link.id)
    assert removed.removed_at is not None and removed.removed_by == "user:alice"
    kept = await raw.fetchall("SELECT count(*) FROM memory_links WHERE id = ?", (link.id,))
    assert kept[0][0] == 1  # stamped, not deleted
    with pytest.raises(NotFound):
        await services.links.unlink(services.principal, link.id)
    actions = await raw.fetchall(
        "SELECT action_type FROM audit WHERE action_type LIKE 'memory_%link' ORDER BY id"
    )
    assert [r[0] for r in actions] == ["memory_link", "memory_unlink"]
    # the memories themselves were not touched: one version each
    assert len(await services.memories.history(NS, "city_old")) == 1


async def test_link_needs_write_on_both_ends_and_denials_are_audited(services, as_principal, raw):
    bob = as_principal(user="bob", app="abathur")
    await bob.memories.put("user:bob:facts", "b", "bob's fact")
    await services.memories.put(NS, "a", "alice's fact")
    for ends in (
        (NS, "a", "user:bob:facts", "b"),
        ("user:bob:facts", "c", NS, "a"),
        (NS, "a", "app:abathur:config", "memory_lifecycle_policies"),  # readable, not writable
    ):
        with pytest.raises(Forbidden):
            await services.links.link(services.principal, "related", *ends)
    await services.recorder.flush()
    denied = await raw.fetchall(
        "SELECT action_data FROM audit WHERE action_type = 'memory_denied'"
        " AND CAST(action_data AS TEXT) LIKE '%link%'"
    )
    assert len(denied) == 3
    assert (await raw.fetchone("SELECT count(*) FROM memory_links"))[0] == 0


async def test_bad_links_are_refused_and_change_nothing(services, raw):
    await services.memories.put(NS, "a", 1)
    with pytest.raises(InvalidInput, match="link_type"):
        await services.links.link(services.principal, "replaces", NS, "a", NS, "a")
    with pytest.raises(InvalidInput, match="itself"):
        await services.links.link(services.principal, "related", NS, "a", NS, "a")
    with pytest.raises(NotFound, match="missing"):
        await services.links.link(services.principal, "related", NS, "a", NS, "missing")
    await services.memories.delete(NS, "a")
    await services.memories.put(NS, "b", 2)
    with pytest.raises(NotFound):  # a deleted memory is not linked
        await services.links.link(services.principal, "related", NS, "b", NS, "a")
    assert (await raw.fetchone("SELECT count(*) FROM memory_links"))[0] == 0


async def test_links_whose_other_end_is_unreadable_are_not_shown(services, as_principal):
    bob = as_principal(user="bob", app="abathur", project="website")
    await bob.memories.put("user:bob:facts", "b", "bob's")
    await bob.memories.put("project:website:facts", "p", "shared")
    await bob.links.link(
        bob.principal, "related", "project:website:facts", "p", "user:bob:facts", "b"
    )
    await services.memories.put("project:website:facts", "q", "alice's")
    await services.links.link(
        services.principal, "related", "project:website:facts", "q", "project:website:facts", "p"
    )
    mine = await services.links.readable_links(services.principal, "project:website:facts", "p")
    assert [(link.from_key, link.to_key) for link in mine] == [("q", "p")]
    theirs = await bob.links.readable_links(bob.principal, "project:website:facts", "p")
    assert len(theirs) == 2


async def test_memory_link_tools_and_links_in_get_and_history(db_url):
    async with connected(db_url) as client:

        async def ok(tool, **args):
            result = await client.call_tool(tool, args)
            assert not result.is_error, f"{tool}: {text_of(result)}"
            return result.structured_content

        await ok("memory_put", namespace=NS, key="dup", value="likes dark themes")
        await ok("memory_put", namespace=NS, key="orig", value="prefers dark mode")
        made = await ok(
            "memory_link",
            from_namespace=NS,
            from_key="dup",
            link_type="duplicates",
            to_namespace=NS,
            to_key="orig",
            reason="same preference",
        )
        assert made["created"] and made["link"]["reason"] == "same preference"
        got = await ok("memory_get", namespace=NS, key="orig")
        assert [(x["from_key"], x["link_type"]) for x in got["links"]] == [("dup", "duplicates")]
        history = await ok("memory_history", namespace=NS, key="dup")
        assert [x["to_key"] for x in history["links"]] == ["orig"]
        bad = await client.call_tool(
            "memory_link",
            {
                "from_namespace": NS,
                "from_key": "dup",
                "link_type": "replaces",
                "to_namespace": NS,
                "to_key": "orig",
            },
        )
        assert bad.is_error and text_of(bad).startswith("invalid_input")
        gone = await ok("memory_unlink", link_id=made["link"]["id"])
        assert gone["link"]["removed_at"]
        got = await ok("memory_get", namespace=NS, key="orig")
        assert got["links"][0]["removed_at"]
        again = await client.call_tool("memory_unlink", {"link_id": made["link"]["id"]})
        assert again.is_error and text_of(again).startswith("not_found")
