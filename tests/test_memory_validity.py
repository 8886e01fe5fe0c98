"""Validity in time beside system time (issue 15): valid_from / valid_to on a put, a
supersedes link that closes the older memory's validity without rewriting its versions,
and reads that take as_of (what the store knew then) and valid_at (what held then)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from mcp_helpers import connected, text_of

from abathur_memory.errors import InvalidInput, NotFound

pytestmark = pytest.mark.anyio

NS = "user:alice:home"


async def test_put_keeps_validity_and_valid_at_picks_the_version_that_held(services):
    first = await services.memories.put(
        NS, "city", "lives in Berlin", valid_from="2020-01-01", valid_to="2024-03-01"
    )
    assert first.version == 1
    same = await services.memories.put(
        NS, "city", "lives in Berlin", valid_from="2020-01-01", valid_to="2024-03-01"
    )
    assert same.unchanged  # equal value and validity: nothing new
    moved = await services.memories.put(
        NS, "city", "lives in Lisbon", valid_from="2024-03-01T00:00:00Z"
    )
    assert moved.version == 2
    now = await services.memories.get(NS, "city")
    assert now.value == "lives in Lisbon" and now.valid_from == "2024-03-01T00:00:00.000Z"
    assert now.valid_to is None
    then = await services.memories.get(NS, "city", valid_at="2022-06-01")
    assert then.version == 1 and then.valid_to == "2024-03-01T00:00:00.000Z"
    assert (await services.memories.get(NS, "city", valid_at="2025-01-01")).version == 2
    with pytest.raises(NotFound, match="holding at"):
        await services.memories.get(NS, "city", valid_at="2019-01-01")
    with pytest.raises(InvalidInput, match="valid_from must be earlier"):
        await services.memories.put(NS, "x", 1, valid_from="2024-01-01", valid_to="2023-01-01")
    with pytest.raises(InvalidInput, match="valid_to"):
        await services.memories.put(NS, "x", 1, valid_to="next tuesday")
    with pytest.raises(NotFound):
        await services.memories.get(NS, "x")  # nothing was written


async def test_supersedes_closes_validity_without_rewriting_versions(services, raw):
    await services.memories.put(NS, "old", "lives in Berlin", valid_from="2020-01-01")
    await services.memories.put(NS, "new", "moved to Lisbon", valid_from="2024-03-01")
    before = await raw.fetchall("SELECT * FROM memory_entries ORDER BY id")
    known = (await services.memories.get(NS, "new")).created_at
    await asyncio.sleep(0.01)  # the link is made a few milliseconds after `known`
    link, _ = await services.links.link(
        services.principal, "supersedes", NS, "new", NS, "old", "moved"
    )
    assert link.holds_until == "2024-03-01T00:00:00.000Z"
    assert [tuple(r) for r in await raw.fetchall("SELECT * FROM memory_entries ORDER BY id")] == [
        tuple(r) for r in before
    ]  # no version rewritten, none added
    old = await services.memories.get(NS, "old")
    assert old.valid_to == "2024-03-01T00:00:00.000Z"  # closed by the link
    assert (await services.memories.get(NS, "old", valid_at="2023-01-01")).version == 1
    with pytest.raises(NotFound):
        await services.memories.get(NS, "old", valid_at="2025-01-01")
    # as_of: before the link was made, the store did not know the fact had ended
    assert (await services.memories.get(NS, "old", as_of=known)).valid_to is None
    await services.links.unlink(services.principal, link.id)
    assert (await services.memories.get(NS, "old")).valid_to is None


async def test_listings_and_history_show_validity_closed_as_get_does(services):
    """memory_list and memory_history show the valid_to a supersedes link closed (as of
    the listing's time), as memory_get does; the stored versions stay as they were."""
    m = services.memories
    await m.put(NS, "old", "lives in Berlin", valid_from="2020-01-01")
    await m.put(NS, "old", "lives in Berlin, Kreuzberg", valid_from="2020-01-01")
    await m.put(NS, "new", "will move to Lisbon", valid_from="2090-03-01")  # not yet
    await asyncio.sleep(0.01)
    known = (await m.get(NS, "new")).created_at
    await asyncio.sleep(0.01)
    link, _ = await services.links.link(services.principal, "supersedes", NS, "new", NS, "old")
    end = "2090-03-01T00:00:00.000Z"

    def valid_to(entries, key="old"):
        return [e.valid_to for e in entries if e.key == key]

    assert valid_to((await m.list(NS)).entries) == [end]  # holds until then: listed
    assert valid_to((await m.list(NS, include_superseded=True)).entries) == [end]
    assert valid_to((await m.list(NS, as_of=known)).entries) == [None]  # link not made yet
    assert valid_to(await m.history(NS, "old")) == [end, end]
    page = await m.history_page(NS, "old")
    assert valid_to(page.entries) == [end, end]
    assert valid_to((await m.list(NS)).entries, "new") == [None]
    await services.links.unlink(services.principal, link.id)
    assert valid_to((await m.list(NS)).entries) == [None]
    assert valid_to((await m.list(NS, as_of=datetime.now(UTC).isoformat())).entries) == [None]


async def test_validity_through_mcp(db_url):
    async with connected(db_url) as client:

        async def call(tool, **args):
            result = await client.call_tool(tool, args)
            assert not result.is_error, f"{tool}: {text_of(result)}"
            return result.structured_content

        await call(
            "memory_put", namespace=NS, key="job", value="works at Acme", valid_from="2021-05-01"
        )
        got = await call("memory_get", namespace=NS, key="job")
        assert got["valid_from"] == "2021-05-01T00:00:00.000Z" and "valid_to" not in got
        held = await client.call_tool(
            "memory_get", {"namespace": NS, "key": "job", "valid_at": "2020-01-01"}
        )
        assert held.is_error and text_of(held).startswith("not_found")
        bad = await client.call_tool(
            "memory_put", {"namespace": NS, "key": "job", "value": 1, "valid_from": "soon"}
        )
        assert bad.is_error and text_of(bad).startswith("invalid_input")
