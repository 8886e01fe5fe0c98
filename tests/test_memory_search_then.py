"""memory_search with ``as_of`` (issue 15, part 2: reads take as_of): what the store knew
then, ranked from the versions live then (search/then.py), on both backends, in every mode,
through the service and over MCP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from acting import Acting
from mcp_helpers import call, connected, snapshot, text_of

from abathur_memory.errors import Forbidden, InvalidInput
from abathur_memory.memory import memories as memories_module

pytestmark = pytest.mark.anyio

NS = "user:alice:places"
MODES = ("keyword", "semantic", "hybrid")


async def _then_and_now(services: Acting) -> str:
    """Three memories, then a moment, then each of them changed; returns the moment."""
    m = services.memories
    await m.put(NS, "city", "lives in Berlin near the river Spree")
    await m.put(NS, "boat", "keeps a sailing boat at the Wannsee marina")
    await m.put(NS, "tool", "edits code in Emacs every day")
    await asyncio.sleep(0.01)
    moment = datetime.now(UTC).isoformat()
    await asyncio.sleep(0.01)
    await m.put(NS, "city", "lives in Lisbon near the river Tagus")
    await m.delete(NS, "boat")
    await m.put(NS, "cafe", "meets friends at a Lisbon cafe")
    await services.runtime.memory_indexer.catch_up()
    return moment


async def _found(
    services: Acting, query: str, **kwargs: Any
) -> dict[str, list[tuple[str, int, object]]]:
    found = {}
    for mode in MODES:
        result = await services.memories.search(query, NS, k=10, mode=mode, **kwargs)
        assert result.mode_used == mode, result.degraded
        found[mode] = [(hit.key, hit.version, hit.value) for hit in result.results]
    return found


async def test_as_of_searches_the_versions_live_then(services):
    moment = await _then_and_now(services)
    embedder = services.runtime.embedder
    before = embedder.embedded_texts
    then = await _found(services, "Berlin Spree", as_of=moment)
    for mode, hits in then.items():  # the text city had then, at the version it had
        assert hits[0] == ("city", 1, "lives in Berlin near the river Spree"), mode
    # each search embedded the two versions no longer live (city's first, the deleted
    # boat) and read the stored vector of the one still live (tool)
    assert embedder.embedded_texts - before == 2 * 2
    now = await _found(services, "Berlin Spree")
    assert all(("city", 1, "lives in Berlin near the river Spree") not in h for h in now.values())

    sailing = await _found(services, "sailing boat marina", as_of=moment)
    assert all(hits[0][:2] == ("boat", 1) for hits in sailing.values())  # deleted since
    assert (await services.memories.search("sailing marina", NS, mode="keyword")).results == []

    lisbon = await services.memories.search("Lisbon Tagus cafe", NS, mode="keyword", as_of=moment)
    assert lisbon.results == []  # nobody said Lisbon then; cafe was stored later
    future = await services.memories.search("Lisbon cafe", NS, mode="keyword", as_of="2999-01-01")
    assert {hit.key for hit in future.results} == {"city", "cafe"}  # a future as_of is now
    early = await services.memories.search("Berlin", NS, as_of="2000-01-01")
    assert early.results == []


async def test_as_of_applies_links_filters_and_redaction_as_then(services):
    m = services.memories
    await m.put(NS, "old", "works as a baker in Hamburg", memory_type="semantic")
    await m.put(NS, "note", "baker course notes", memory_type="episodic", metadata={"n": 1})
    await m.put(NS, "flag", "baker hat", metadata={"n": True})
    await m.put(NS, "dated", {"text": "baker fair", "date": "2019-05-04"})
    await m.put(NS, "long", {"text": "baker " + "x" * 6000})
    await asyncio.sleep(0.01)
    moment = datetime.now(UTC).isoformat()
    await asyncio.sleep(0.01)
    await m.put(NS, "new", "works as a pilot in Hamburg")
    await services.links.link(services.principal, "supersedes", NS, "new", NS, "old")
    await services.runtime.memory_indexer.catch_up()

    async def keys(**kwargs: Any) -> set[str]:
        result = await m.search("baker", NS, k=20, mode="keyword", as_of=moment, **kwargs)
        return {hit.key for hit in result.results}

    everything = {"old", "note", "flag", "dated", "long"}
    assert await keys() == everything  # the supersedes link was made after the moment
    assert "old" not in {h.key for h in (await m.search("baker", NS, mode="keyword")).results}
    assert await keys(memory_type="episodic") == {"note"}
    assert await keys(metadata={"n": 1}) == {"note"}  # True is not 1
    assert await keys(metadata={"n": True}) == {"flag"}
    assert await keys(after="2019-05-01", before="2019-05-10") == {"dated"}
    assert await keys(after="2020-01-01") == everything - {"dated"}  # when first stored
    hit = next(
        h
        for h in (await m.search("baker", NS, mode="keyword", as_of=moment)).results
        if h.key == "long"
    )
    listed = next(e for e in (await m.list(NS, as_of=moment)).entries if e.key == "long")
    assert (hit.value, hit.truncated) == (listed.value, listed.truncated)  # cut as listed
    assert hit.truncated and hit.truncated["value"] > 6000
    await services.redaction.redact(services.principal, NS, "note", 1)
    assert await keys() == everything - {"note"}  # an erased version has nothing to find


async def test_as_of_search_refuses_what_it_cannot_do_and_changes_nothing(
    services, as_principal, monkeypatch
):
    m = services.memories
    moment = await _then_and_now(services)
    with pytest.raises(InvalidInput, match=r"^as_of: "):
        await m.search("Berlin", NS, as_of="last week")
    with pytest.raises(InvalidInput, match="mode must be one of"):
        await m.search("Berlin", NS, mode="fuzzy", as_of=moment)
    with pytest.raises(InvalidInput, match="context is not available with as_of"):
        await m.search("Berlin", NS, context=1, as_of=moment)
    bob = as_principal(user="bob", app="abathur")
    with pytest.raises(Forbidden):
        await bob.memories.search("Berlin", prefix=NS, as_of=moment)
    seen = (await bob.memories.search("Berlin", as_of=moment)).results
    assert seen and all(hit.namespace.startswith("app:") for hit in seen)  # not alice's
    monkeypatch.setattr(memories_module, "AS_OF_MAX_MEMORIES", 1)
    with pytest.raises(InvalidInput, match=r"more than 1 were live under user:alice:places"):
        await m.search("Berlin", NS, as_of=moment)
    assert len((await m.search("Berlin", NS, mode="keyword")).results) == 0  # now: Lisbon


async def test_as_of_over_mcp(db_url):
    async with connected(db_url) as client:
        await call(client, "memory_put", namespace=NS, key="city", value="lives in Berlin")
        await asyncio.sleep(0.01)
        moment = datetime.now(UTC).isoformat()
        await asyncio.sleep(0.01)
        await call(client, "memory_put", namespace=NS, key="city", value="lives in Lisbon")
        found = await call(client, "memory_search", query="Berlin", prefix=NS, as_of=moment)
        assert [(h["key"], h["version"], h["value"]) for h in found["results"]] == [
            ("city", 1, "lives in Berlin")
        ]
        before = snapshot(db_url)
        result = await client.call_tool(
            "memory_search", {"query": "Berlin", "as_of": moment, "context": 2}
        )
        assert result.is_error and text_of(result).startswith("invalid_input: context is")
        assert snapshot(db_url) == before
