"""Every list and search reply is bounded in bytes, on both backends: long fields are cut
(and say so in ``truncated``), a page ends early with a cursor (always one entry at least),
and the get tools still return everything whole. Once, 200 memories of 1 MiB made one
memory_list call a 410 MB reply."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

import pytest
from conftest import settings_for
from indexing_helpers import write_tree
from mcp_helpers import call, connected

from abathur_memory.core.principal import Principal
from abathur_memory.runtime import open_runtime

pytestmark = pytest.mark.anyio

REPLY = 16 * 1024  # the smallest reply bound a setting allows
FIELD = 1024
BOUNDED = {"max_reply_bytes": REPLY, "max_listed_value_bytes": FIELD}
SLACK = 512  # the reply's own fields around the bounded list


def size(result: object) -> int:
    return len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())


def big(n: int, length: int) -> str:
    return f"{n:04d} " + "ab" * (length // 2)


async def pages(client, tool, field, **args):
    """Every page of a listing; each one is checked against the bound."""
    found, cursor = [], None
    while True:
        page = await call(client, tool, **args, **({"cursor": cursor} if cursor else {}))
        assert size(page) <= REPLY + SLACK, (tool, size(page))
        assert page[field], "a page holds at least one entry"
        found.append(page[field])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_memory_list_cuts_long_values_and_pages_in_bytes(db_url):
    ns = "user:alice:big"
    async with connected(db_url, **BOUNDED) as client:
        for n in range(40):
            await call(client, "memory_put", namespace=ns, key=f"k{n:02d}", value=big(n, 30_000))
        await call(client, "memory_put", namespace=ns, key="small", value={"a": 1})
        listed = await pages(client, "memory_list", "entries", prefix=ns, limit=1000)
        assert len(listed) > 2  # 40 cut values do not fit one 16 KiB reply
        entries = [e for page in listed for e in page]
        assert [e["key"] for e in entries] == [f"k{n:02d}" for n in range(40)] + ["small"]
        for n, entry in enumerate(entries[:40]):
            assert entry["truncated"]["value"] >= 30_000, entry["truncated"]
            assert isinstance(entry["value"], str) and len(entry["value"].encode()) <= FIELD
            assert entry["value"].startswith(f'"{n:04d} abab')  # the beginning of its JSON
        assert entries[-1]["value"] == {"a": 1} and "truncated" not in entries[-1]
        whole = await call(client, "memory_get", namespace=ns, key="k07")
        assert whole["value"] == big(7, 30_000) and "truncated" not in whole


async def test_a_page_holds_one_entry_even_when_it_is_larger_than_the_bound(db_url):
    ns = "user:alice:meta"
    metadata = {"notes": "m" * 20_000}  # metadata is listed whole: each entry > 16 KiB
    async with connected(db_url, **BOUNDED) as client:
        for n in range(3):
            await call(client, "memory_put", namespace=ns, key=f"k{n}", value=n, metadata=metadata)
        found, cursor = [], None
        while True:
            args = {"prefix": ns, **({"cursor": cursor} if cursor else {})}
            page = await call(client, "memory_list", **args)
            assert len(page["entries"]) == 1
            found.append(page["entries"][0]["key"])
            if (cursor := page["next_cursor"]) is None:
                break
        assert found == ["k0", "k1", "k2"]


async def test_memory_history_pages_and_memory_get_reads_a_version_whole(db_url):
    ns = "user:alice:h"
    async with connected(db_url, **BOUNDED) as client:
        for n in range(30):
            await call(client, "memory_put", namespace=ns, key="k", value=big(n, 20_000))
        listed = await pages(client, "memory_history", "versions", namespace=ns, key="k")
        versions = [v for page in listed for v in page]
        assert [v["version"] for v in versions] == list(range(1, 31)) and len(listed) > 1
        assert all(v["truncated"]["value"] > FIELD for v in versions)
        got = await call(client, "memory_get", namespace=ns, key="k", version=12)
        assert got["value"] == big(11, 20_000)


async def test_memory_search_cuts_hit_values_and_leaves_out_what_does_not_fit(db_url):
    ns = "user:alice:s"
    async with connected(db_url, **BOUNDED) as client:
        for n in range(30):
            value = f"kingfisher sighting {n} " + "river " * 2000
            await call(client, "memory_put", namespace=ns, key=f"k{n:02d}", value=value)
        for _ in range(600):  # the keyword index is caught up in the background
            found = await call(client, "memory_search", query="kingfisher", k=30, mode="keyword")
            if found["pending"] == 0 and found["results"]:
                break
            await asyncio.sleep(0.05)
        assert size(found) <= REPLY + SLACK
        assert found["omitted"] > 0 and len(found["results"]) + found["omitted"] == 30
        for hit in found["results"]:
            assert hit["truncated"]["value"] > FIELD and len(hit["value"].encode()) <= FIELD


async def test_session_get_cuts_events_keeps_the_newest_and_reads_one_whole(db_url):
    async with connected(db_url, **BOUNDED) as client:
        session = await call(client, "session_create")
        sid = session["id"]
        for n in range(20):
            content = {"text": big(n, 100_000)}
            await call(
                client,
                "session_append",
                session_id=sid,
                event_type="m",
                actor="u",
                content=content,
                state_delta={"step": n},
            )
        latest = await call(client, "session_get", session_id=sid, events_limit=1000)
        assert size(latest) <= REPLY + SLACK
        seqs = [e["seq"] for e in latest["events"]]
        assert seqs[-1] == 20 and seqs == list(range(seqs[0], 21)) and seqs[0] > 1
        for event in latest["events"]:
            assert event["truncated"] == {"content": event["truncated"]["content"]}
            assert event["content"].startswith('{"text":') or event["content"].startswith(
                '{"text": '
            )
            assert event["state_delta"] == {"step": event["seq"] - 1}  # short: left whole
        first = await call(client, "session_get", session_id=sid, events_after=0)
        assert first["events"][0]["seq"] == 1 and size(first) <= REPLY + SLACK
        assert len(first["events"]) < 20  # the first page ends early too
        one = await call(client, "session_get", session_id=sid, events_after=4, events_limit=1)
        [event] = one["events"]
        assert event["content"] == {"text": big(4, 100_000)} and "truncated" not in event


async def test_session_list_and_task_list_are_bounded(db_url):
    async with connected(db_url, **BOUNDED) as client:
        for n in range(12):
            await call(client, "session_create", state={"blob": big(n, 40_000)})
            await call(
                client,
                "task_create",
                prompt=big(n, 30_000),
                input={"blob": big(n, 30_000)},
            )
        sessions = [s for p in await pages(client, "session_list", "sessions") for s in p]
        assert len(sessions) == 12
        for s in sessions:
            assert s["state"] == {} and s["truncated"]["state"] > 40_000
        whole = await call(client, "session_get", session_id=sessions[0]["id"])
        assert len(whole["state"]["blob"]) > 40_000
        tasks = [t for p in await pages(client, "task_list", "tasks", limit=200) for t in p]
        assert len(tasks) == 12
        for t in tasks:
            assert set(t["truncated"]) == {"prompt", "input"} and t["input"] == {}
            assert len(t["prompt"].encode()) <= FIELD
        task = await call(client, "task_get", task_id=tasks[0]["id"])
        assert len(task["prompt"]) > 30_000 and len(task["input"]["blob"]) > 30_000


async def test_document_get_of_a_huge_range_stops_early_and_goes_on(db_url, tmp_path):
    lines = [f"line {n:05d} " + "x" * 90 for n in range(1, 3001)]
    root = write_tree(tmp_path / "big", {"long.md": "# Long\n\n" + "\n".join(lines) + "\n"})
    async with connected(db_url, docs=[str(root)], **BOUNDED) as client:
        await call(client, "index_refresh")
        read, start, rounds = [], 1, 0
        while start is not None:
            part = await call(client, "document_get", path="big/long.md", start_line=start)
            assert size(part) <= REPLY + SLACK and part["start_line"] == start
            read.extend(part["text"].split("\n"))
            start = part.get("next_start_line")
            rounds += 1
        assert rounds > 10
        assert read == ["# Long", "", *lines]


async def test_a_listing_never_holds_the_long_values_in_memory(db_url):
    """The store cuts values in SQL, so listing 12 MB of memories allocates kilobytes."""
    settings = settings_for(db_url, max_value_bytes=1024 * 1024)
    alice = Principal(user="alice", app="abathur", project="website")
    async with open_runtime(settings) as runtime:
        for n in range(24):
            await runtime.memories.put(alice, "user:alice:m", f"k{n}", big(n, 512 * 1024))
        tracemalloc.start()
        try:
            page = await runtime.memories.list(alice, "user:alice:m", limit=1000)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 2 * 1024 * 1024, f"listing allocated {peak:,} bytes"
        assert len(page.entries) == 24 and all(e.truncated for e in page.entries)
        history = await runtime.memories.history_page(alice, "user:alice:m", "k3")
    assert history.entries[0].truncated == {"value": len(json.dumps(big(3, 512 * 1024)))}


async def test_index_refresh_keeps_its_counts_and_as_many_names_as_fit(db_url, tmp_path):
    files = {f"notes/{'long-folder-name-' * 4}{n:04d}.md": f"# Note {n}\n" for n in range(400)}
    root = write_tree(tmp_path / "many", files)
    async with connected(db_url, docs=[str(root)], **BOUNDED) as client:
        await call(client, "index_refresh")  # (serve also indexes them in the background)
        status = await call(client, "index_status")
        assert status["roots"][0]["documents"] == 400, status["roots"]
        for rel in files:
            (root / rel).unlink()
        report = await call(client, "index_refresh")
    assert size(report) <= REPLY + SLACK
    [scan] = report["scans"]
    assert scan["deleted"] == 400  # the count is whole
    assert 0 < len(scan["removed"]) < 400 and len(scan["removed"]) + report["omitted"] == 400
