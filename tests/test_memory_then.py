"""Reads of what held then and what the store knew then on listings and search (issue 15,
parts 2-3): ``valid_at`` on memory_search and memory_list keeps what held at that time
instead of now, inside candidate selection (both arms, both backends); ``as_of`` on
memory_list shows each key's version live then, hidden as the store then knew."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from acting import Acting
from conftest import settings_for
from mcp_helpers import call, connected, snapshot, text_of

from abathur_memory.core.principal import Principal
from abathur_memory.errors import Forbidden, InvalidInput, NotFound
from abathur_memory.memory.memories import PutRequest
from abathur_memory.runtime import open_runtime

pytestmark = pytest.mark.anyio

ALICE = Principal(user="alice", app="abathur", project="website")
NS = "user:alice:career"
MODES = ("keyword", "semantic", "hybrid")


async def _keys_found(services: Acting, query: str, **kwargs: Any) -> dict[str, set[str]]:
    """The keys each mode finds."""
    await services.runtime.memory_indexer.catch_up()
    found = {}
    for mode in MODES:
        result = await services.memories.search(query, NS, k=20, mode=mode, **kwargs)
        assert result.mode_used == mode
        found[mode] = {hit.key for hit in result.results}
    return found


async def _listed(services: Acting, prefix: str | None = NS, **kwargs: Any) -> list[str]:
    """The keys listed in NS (without a prefix, a listing also holds the seeded memories)."""
    page = await services.memories.list(prefix, limit=1000, **kwargs)
    return [entry.key for entry in page.entries if entry.namespace == NS]


async def test_valid_at_keeps_what_held_then_in_search_and_list(services):
    m = services.memories
    job = "works at {} as an engineer"
    await m.put(NS, "acme", job.format("Acme"), valid_from="2015-01-01", valid_to="2019-06-01")
    await m.put(NS, "globex", job.format("Globex"), valid_from="2019-06-01")
    await m.put(NS, "initech", job.format("Initech"))  # no validity: it always holds
    await m.put(NS, "hooli", job.format("Hooli"), valid_from="2090-01-01")
    await m.put(NS, "piper", job.format("Pied Piper"), valid_from="2016-01-01")
    await m.put(NS, "piper2", job.format("Pied Piper, lead"), valid_from="2018-01-01")
    await m.put(NS, "dup", job.format("Initech") + ", again")
    await services.links.link(services.principal, "supersedes", NS, "piper2", NS, "piper")
    await services.links.link(services.principal, "duplicates", NS, "dup", NS, "initech")

    held = {
        # piper holds from 2016 until piper2's valid_from closes it (2018-01-01)
        "2017-03-01": ["acme", "initech", "piper"],
        "2018-06-01": ["acme", "initech", "piper2"],
        "2019-06-01T00:00:00Z": ["globex", "initech", "piper2"],  # from inclusive, to not
        "2095-01-01": ["globex", "hooli", "initech", "piper2"],
    }
    for moment, keys in held.items():
        assert await _listed(services, valid_at=moment) == keys, moment
        assert await _listed(services, None, valid_at=moment) == keys, moment  # no prefix
        found = await _keys_found(services, "works engineer", valid_at=moment)
        assert found == {mode: set(keys) for mode in MODES}, moment
    # without valid_at: what holds now, as before
    assert await _listed(services) == ["globex", "hooli", "initech", "piper2"]


async def test_as_of_lists_what_the_store_knew_then(services):
    m = services.memories
    await m.put(NS, "city", "lives in Berlin", valid_from="2020-01-01")
    await m.put(NS, "gone", "a fact deleted later")
    await m.put(NS, "old", "an old fact")
    first = (await m.get(NS, "old")).created_at
    await asyncio.sleep(0.01)  # what follows is stored after `first`
    await m.put(NS, "city", "lives in Lisbon", valid_from="2024-01-01")
    await m.delete(NS, "gone")
    await m.put(NS, "newer", "a fact that replaces the old one")
    link, _ = await services.links.link(services.principal, "supersedes", NS, "newer", NS, "old")
    await asyncio.sleep(0.01)
    linked = datetime.now(UTC).isoformat()  # after the link was made, before its removal
    await asyncio.sleep(0.01)

    then = (await m.list(NS, as_of=first)).entries
    assert [(e.key, e.version, e.value) for e in then] == [
        ("city", 1, "lives in Berlin"),
        ("gone", 1, "a fact deleted later"),
        ("old", 1, "an old fact"),  # the supersedes link was not made yet
    ]
    assert await _listed(services, None, as_of=first) == ["city", "gone", "old"]
    page = await m.list(NS, limit=2, as_of=first)  # pages as a listing of now does
    assert [e.key for e in page.entries] == ["city", "gone"] and page.next_cursor
    rest = await m.list(NS, limit=2, cursor=page.next_cursor, as_of=first)
    assert [e.key for e in rest.entries] == ["old"] and rest.next_cursor is None
    assert await _listed(services, as_of="2000-01-01") == []
    now = await _listed(services)
    assert now == ["city", "newer"]
    assert await _listed(services, as_of="2999-01-01") == now  # a future as_of reads as now
    assert await _listed(services, as_of=linked) == now
    # valid_at with as_of: what held then, as the store knew it then
    assert await _listed(services, as_of=first, valid_at="2019-01-01") == ["gone", "old"]
    # the link closes old's validity when it was made, after 2022: old held then
    assert await _listed(services, valid_at="2022-01-01") == ["newer", "old"]

    await services.links.unlink(services.principal, link.id)
    assert await _listed(services) == ["city", "newer", "old"]
    assert await _listed(services, as_of=linked) == ["city", "newer"]  # the link stood then
    assert await _listed(services, as_of=linked, include_superseded=True) == [
        "city",
        "newer",
        "old",
    ]


async def test_bad_times_and_arguments_are_refused(services, as_principal):
    m = services.memories
    await m.put(NS, "job", "works at Acme")
    with pytest.raises(InvalidInput, match=r"^as_of: "):
        await m.list(NS, as_of="yesterday")
    with pytest.raises(InvalidInput, match=r"^valid_at: "):
        await m.list(NS, valid_at="soon")
    with pytest.raises(InvalidInput, match=r"^valid_at: "):
        await m.search("acme", valid_at="soon")
    with pytest.raises(InvalidInput, match=r"^as_of: .*out of the range"):
        await m.list(NS, as_of="0001-01-01T00:00:00+01:00")  # before year 1 in UTC
    with pytest.raises(InvalidInput, match=r"^valid_at: .*out of the range"):
        await m.search("acme", valid_at="9999-12-31T23:59:59-01:00")
    # a time before year 1000 compares as a time (not as the text '999-...')
    assert await _listed(services, as_of="0999-05-01") == []
    assert await _listed(services, valid_at="0999-05-01") == ["job"]
    await m.put(NS, "dated", "since 2020", valid_from="2020-01-01")
    with pytest.raises(NotFound):
        await m.get(NS, "dated", valid_at="0999-05-01")
    with pytest.raises(InvalidInput, match="give one of them"):
        await m.list(NS, valid_at="2020-01-01", include_superseded=True)
    with pytest.raises(InvalidInput, match="give one of them"):
        await m.search("acme", valid_at="2020-01-01", include_superseded=True)
    bob = as_principal(user="bob", app="abathur")
    with pytest.raises(Forbidden):
        await bob.memories.list(NS, as_of="2020-01-01")
    with pytest.raises(Forbidden):
        await bob.memories.search("acme", prefix=NS, valid_at="2020-01-01")


async def test_bad_times_over_mcp_name_the_argument_and_change_nothing(db_url):
    async with connected(db_url) as client:
        await call(client, "memory_put", namespace=NS, key="job", value="works at Acme")
        before = snapshot(db_url)
        for tool, args, named in (
            ("memory_list", {"prefix": NS, "as_of": "yesterday"}, "as_of"),
            ("memory_list", {"prefix": NS, "valid_at": "soon"}, "valid_at"),
            ("memory_search", {"query": "acme", "valid_at": "2021-13-01"}, "valid_at"),
        ):
            result = await client.call_tool(tool, args)
            assert result.is_error, tool
            assert text_of(result).startswith(f"invalid_input: {named}: "), text_of(result)
        assert snapshot(db_url) == before
        listed = await call(client, "memory_list", prefix=NS, as_of="2999-01-01")
        assert [e["key"] for e in listed["entries"]] == ["job"]


async def test_five_valid_at_t_among_4000_near_neighbours_that_were_not(db_url):
    """valid_at runs inside candidate selection: filtering after k-NN would return none of
    the 5, every near neighbour not holding at t (ended, not begun, ended at t exactly,
    or closed by a supersedes link)."""
    at = "2021-06-01T00:00:00Z"
    text = "quarterly report on river otters and their dams"
    ends: dict[int, dict[str, Any]] = {
        0: {"valid_to": "2019-01-01"},
        1: {"valid_from": "2023-01-01"},
        2: {"valid_from": "2010-01-01", "valid_to": at},
        3: {},  # superseded by `summary` from 2020
    }
    async with open_runtime(settings_for(db_url)) as runtime:
        for start in range(0, 4000, 1000):
            await runtime.memories.put_many(
                ALICE,
                [
                    PutRequest("user:alice:reports", f"r{n}", {"text": text, "n": n}, **ends[n % 4])
                    for n in range(start, start + 1000)
                ],
            )
        await runtime.memories.put(
            ALICE,
            "user:alice:reports",
            "summary",
            "a summary of the beaver census",
            valid_from="2020-01-01",
        )
        await runtime.memories.put_many(
            ALICE,
            [
                PutRequest(
                    "user:alice:reports",
                    f"keep{n}",
                    {"text": text, "k": n},
                    valid_from=at,
                    valid_to="2022-01-01",  # ended since: a search of now leaves them out
                )
                for n in range(5)
            ],
        )
        for n in range(3, 4000, 4):
            await runtime.links.link(
                ALICE, "supersedes", "user:alice:reports", "summary", "user:alice:reports", f"r{n}"
            )
        await runtime.memory_indexer.catch_up()
    async with connected(db_url) as client:
        wanted = {f"keep{n}" for n in range(5)}
        for mode in MODES:
            for prefix in ({}, {"prefix": "user:alice:reports"}):
                result = await call(
                    client,
                    "memory_search",
                    query="river otters report",
                    k=5,
                    mode=mode,
                    valid_at=at,
                    **prefix,
                )
                assert result["mode_used"] == mode
                assert {hit["key"] for hit in result["results"]} == wanted, (mode, prefix)
            now = await call(client, "memory_search", query="river otters report", k=5, mode=mode)
            assert len(now["results"]) == 5 and not wanted & {h["key"] for h in now["results"]}
        listed = await call(
            client, "memory_list", prefix="user:alice:reports", limit=1000, valid_at=at
        )
        assert {e["key"] for e in listed["entries"]} == wanted | {"summary"}
