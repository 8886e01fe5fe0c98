"""Search and listings show what holds (issue 15): superseded memories, the from side of
duplicates and memories whose validity has ended are left out inside candidate selection
(both arms, both backends) unless include_superseded; unresolved contradictions are marked."""

from __future__ import annotations

import pytest
from conftest import settings_for
from mcp_helpers import call, connected

from abathur_memory.core.principal import Principal
from abathur_memory.memory.memories import PutRequest
from abathur_memory.runtime import open_runtime

pytestmark = pytest.mark.anyio

ALICE = Principal(user="alice", app="abathur", project="website")
NS = "user:alice:facts"


@pytest.fixture
async def search(services):
    runtime = services.runtime

    async def run(query, **kwargs):
        await runtime.memory_indexer.catch_up()
        return await runtime.memories.search(services.principal, query, **kwargs)

    return run


async def test_a_superseded_memory_is_not_ranked_above_its_successor(services, search):
    m = services.memories
    await m.put(NS, "city_old", "Alice lives in Berlin, Berlin is where Alice lives")
    await m.put(NS, "city_new", "Alice moved to Lisbon")
    before = await search("where does Alice live Berlin", mode="keyword")
    assert before.results[0].key == "city_old"  # the stale fact matches the words best
    await services.links.link(services.principal, "supersedes", NS, "city_new", NS, "city_old")
    for mode in ("keyword", "semantic", "hybrid"):
        after = await search("where does Alice live Berlin", mode=mode)
        assert "city_old" not in {h.key for h in after.results}, mode
    every = await search("where does Alice live Berlin", mode="keyword", include_superseded=True)
    assert {h.key for h in every.results} >= {"city_old", "city_new"}
    listed = await m.list(NS)
    assert [e.key for e in listed.entries] == ["city_new"]
    assert [e.key for e in (await m.list(NS, include_superseded=True)).entries] == [
        "city_new",
        "city_old",
    ]
    assert "city_old" not in {e.key for e in (await m.list()).entries}  # no prefix: same rule


async def test_duplicates_and_ended_validity_are_left_out(services, search):
    m = services.memories
    await m.put(NS, "theme", "prefers dark mode")
    await m.put(NS, "theme2", "likes dark themes, dark mode")
    await m.put(NS, "trial", "dark mode trial subscription", valid_to="2020-01-01")
    await m.put(NS, "later", "dark mode from next decade", valid_from="2090-01-01")
    await services.links.link(services.principal, "duplicates", NS, "theme2", NS, "theme")
    found = await search("dark mode", mode="keyword")
    assert {h.key for h in found.results} == {"theme", "later"}
    assert [e.key for e in (await m.list(NS)).entries] == ["later", "theme"]
    every = await search("dark mode", mode="keyword", include_superseded=True)
    assert {h.key for h in every.results} == {"theme", "theme2", "trial", "later"}


async def test_unresolved_contradictions_are_marked_until_resolved(services, search, as_principal):
    m = services.memories
    await m.put(NS, "diet", "Alice is vegetarian")
    await m.put(NS, "diet2", "Alice eats steak every friday")
    await services.links.link(services.principal, "contradicts", NS, "diet2", NS, "diet")
    found = await search("vegetarian", mode="keyword")
    (hit,) = found.results
    assert hit.key == "diet"
    assert [(c.key, c.value) for c in hit.contradicts] == [
        ("diet2", "Alice eats steak every friday")
    ]
    both = await search("Alice vegetarian steak", mode="keyword")
    marks = {h.key: [c.key for c in h.contradicts or []] for h in both.results}
    assert marks["diet"] == ["diet2"] and marks["diet2"] == ["diet"]
    # resolved: diet2 supersedes diet; diet is left out and diet2 is no longer marked
    await services.links.link(services.principal, "supersedes", NS, "diet2", NS, "diet")
    resolved = await search("Alice vegetarian steak", mode="keyword")
    assert [(h.key, h.contradicts) for h in resolved.results] == [("diet2", None)]


async def test_five_live_among_4000_superseded_near_neighbours(db_url):
    """The filter runs inside candidate selection: filtering after k-NN would return none
    of the 5 live memories, every near neighbour being superseded, a duplicate or ended."""
    text = "quarterly report on river otters and their dams"
    async with open_runtime(settings_for(db_url)) as runtime:
        for start in range(0, 4000, 1000):
            await runtime.memories.put_many(
                ALICE,
                [
                    PutRequest(
                        "user:alice:reports",
                        f"r{n}",
                        {"text": text, "n": n},
                        valid_to="2020-01-01T00:00:00Z" if n % 4 == 0 else None,
                    )
                    for n in range(start, start + 1000)
                ],
            )
        await runtime.memories.put(
            ALICE, "user:alice:reports", "summary", "a summary of the beaver census"
        )
        await runtime.memories.put_many(
            ALICE,
            [
                PutRequest("user:alice:reports", f"keep{n}", {"text": text, "k": n})
                for n in range(5)
            ],
        )
        for n in range(4000):
            if n % 4 == 1:  # the duplicate is the from side
                ends = ("user:alice:reports", f"r{n}", "duplicates", "user:alice:reports", "keep0")
            elif n % 4:
                ends = (
                    "user:alice:reports",
                    "summary",
                    "supersedes",
                    "user:alice:reports",
                    f"r{n}",
                )
            else:
                continue  # validity ended
            await runtime.links.link(ALICE, ends[2], ends[0], ends[1], ends[3], ends[4])
        await runtime.memory_indexer.catch_up()
    async with connected(db_url) as client:
        wanted = {f"keep{n}" for n in range(5)}
        for mode in ("keyword", "semantic", "hybrid"):
            result = await call(
                client, "memory_search", query="river otters report", k=5, mode=mode
            )
            assert result["mode_used"] == mode
            assert {hit["key"] for hit in result["results"]} == wanted, mode
        every = await call(
            client,
            "memory_search",
            query="river otters report",
            k=20,
            mode="keyword",
            include_superseded=True,
        )
        assert {hit["key"] for hit in every["results"]} - wanted  # the others are still there
        listed = await call(client, "memory_list", prefix="user:alice:reports", limit=1000)
        assert {e["key"] for e in listed["entries"]} == wanted | {"summary"}


async def test_the_hiding_test_is_an_index_lookup_per_candidate(db):
    """Per candidate, the links that could hide it are found by its address (a scan of
    every link per candidate made a listing quadratic)."""
    from abathur_memory.store.sqlite.queries import MEMORY_LIST_PAGE

    params = {
        "prefix": "user:x",
        "memory_type": None,
        "after_namespace": "",
        "after_key": "",
        "limit": 50,
        "cut": 4096,
        "include_superseded": 0,
    }
    plan = [row[3] for row in await db.fetchall("EXPLAIN QUERY PLAN " + MEMORY_LIST_PAGE, params)]
    links = [step for step in plan if " l " in f" {step} "]
    assert len(links) == 2, plan
    assert all("idx_memory_links_to" in s or "idx_memory_links_from" in s for s in links), plan


async def test_a_hit_is_the_record_get_shows_with_its_validity_closed(services, search):
    """A search hit carries the fields memory_get shows (one public memory model), and the
    valid_to a supersedes link closed, as get shows it; at an as_of before the link, open."""
    m = services.memories
    await m.put(NS, "home_old", "Alice lives in Berlin", valid_from="2020-01-01")
    await m.put(NS, "home_new", "Alice will move to Lisbon", valid_from="2090-03-01")
    before = (await m.get(NS, "home_new")).created_at
    await services.links.link(services.principal, "supersedes", NS, "home_new", NS, "home_old")
    got = await m.get(NS, "home_old")
    assert got.valid_to == "2090-03-01T00:00:00.000Z"
    for mode in ("keyword", "semantic", "hybrid"):
        found = await search("Alice lives in Berlin", mode=mode, k=5)
        [hit] = [h for h in found.results if h.key == "home_old"]
        record = got.model_dump(exclude={"id"})
        assert {name: getattr(hit, name) for name in record} == record, mode
        assert hit.score > 0 and hit.snippet
    then = await search("Alice lives in Berlin", mode="keyword", as_of=before)
    [hit] = [h for h in then.results if h.key == "home_old"]
    assert hit.valid_to is None and hit.created_by == got.created_by
