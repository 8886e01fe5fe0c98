"""memory_search finds what agents stored: conversations read in context, hybrid never below
its better half, filters inside candidate selection, neighbours and packing, time-aware
queries; on both backends.

The conversational fixture (tests/data/conversations.json) is written for these tests: two
multi-session dialogues whose answers are often replies ("Twice a day, before work and after
dinner.") whose own words do not match the question.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import settings_for
from mcp_helpers import call, connected, text_of

from abathur_memory.core.principal import Principal
from abathur_memory.memory.memories import PutRequest
from abathur_memory.runtime import open_runtime
from abathur_memory.search.packing import pack
from abathur_memory.search.results import MemoryHit, MemoryNeighbour

pytestmark = pytest.mark.anyio

FIXTURE = Path(__file__).parent / "data" / "conversations.json"
ALICE = Principal(user="alice", app="abathur", project="website")


def conversation_memories() -> tuple[list[tuple[str, str, dict[str, Any]]], list[Any]]:
    data = json.loads(FIXTURE.read_text())
    memories, questions = [], []
    for conversation in data["conversations"]:
        namespace = f"user:alice:chat:{conversation['id']}"
        for number, session in enumerate(conversation["sessions"], start=1):
            for turn, (speaker, text) in enumerate(session["turns"], start=1):
                value = {"speaker": speaker, "text": text, "date": session["date"]}
                memories.append((namespace, f"S{number}:{turn}", value))
        for question, evidence in conversation["questions"]:
            questions.append((namespace, question, set(evidence)))
    return memories, questions


async def store_conversations(client: Any) -> list[Any]:
    memories, questions = conversation_memories()
    for namespace, key, value in memories:
        await call(client, "memory_put", namespace=namespace, key=key, value=value)
    return questions


async def caught_up(client: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = await call(client, "memory_search", query="anything", k=1)
        if result["pending"] == 0 and result["mode_used"] == "hybrid":
            return
        assert time.monotonic() < deadline, f"index not caught up: {result}"
        await asyncio.sleep(0.05)


async def recall(client: Any, questions: list[Any], mode: str, k: int = 5) -> float:
    found = 0.0
    for namespace, question, evidence in questions:
        result = await call(
            client, "memory_search", query=question, prefix=namespace, k=k, mode=mode
        )
        keys = {hit["key"] for hit in result["results"]}
        found += len(keys & evidence) / len(evidence)
    return found / len(questions)


@pytest.mark.slow
async def test_hybrid_is_not_below_either_half_on_a_conversation(db_url):
    """With the embedded model: hybrid recall@10 (bench/memory_retrieval.py's headline) at
    least keyword's and semantic's. Before the fusion was decided by measurement, reciprocal
    rank fusion put hybrid below semantic here (0.885 against 0.904 on SQLite)."""
    async with connected(db_url, embedder="embedded") as client:
        questions = await store_conversations(client)
        await caught_up(client)
        halves = {m: await recall(client, questions, m, k=10) for m in ("keyword", "semantic")}
        hybrid = await recall(client, questions, "hybrid", k=10)
        assert hybrid >= max(halves.values()), (hybrid, halves)


async def test_a_reply_is_found_through_the_turn_before_it(db_url):
    """ "Twice a day, before work and after dinner." shares no word with "How often does
    Nora walk Biscuit?": the turn before it ("How often do you two go out?") does."""
    async with connected(db_url) as client:
        await store_conversations(client)
        await caught_up(client)
        result = await call(
            client,
            "memory_search",
            query="How often do they walk?",
            prefix="user:alice:chat:nora-and-sam",
            k=5,
            mode="keyword",
        )
        assert "S1:9" in [hit["key"] for hit in result["results"]], result["results"]


async def test_facts_and_documents_stand_alone(db_url):
    """Memories that are not part of a sequence (no speaker, not episodic) take no context:
    a fact is not found through the words of the fact stored before it."""
    async with connected(db_url) as client:
        for key, text in [
            ("a", "The office wifi password is written on the fridge."),
            ("b", "Invoices go to the accounting mailbox."),
        ]:
            await call(client, "memory_put", namespace="user:alice:facts", key=key, value=text)
        await caught_up(client)
        result = await call(
            client, "memory_search", query="wifi password fridge", mode="keyword", k=5
        )
        assert [hit["key"] for hit in result["results"]] == ["a"]


async def test_a_deleted_turn_leaves_its_neighbours_context(db_url):
    async with connected(db_url) as client:
        namespace = "user:alice:chat:x"
        for key, text in [
            ("1", "We visited the glacier museum."),
            ("2", "It was cold."),
            ("3", "Then we had soup."),
        ]:
            await call(
                client,
                "memory_put",
                namespace=namespace,
                key=key,
                value={"speaker": "Ann", "text": text},
            )
        await caught_up(client)
        before = await call(client, "memory_search", query="glacier", mode="keyword", k=5)
        assert {hit["key"] for hit in before["results"]} == {"1", "2", "3"}
        await call(client, "memory_delete", namespace=namespace, key="1")
        await caught_up(client)
        after = await call(client, "memory_search", query="glacier", mode="keyword", k=5)
        assert after["results"] == []


async def test_a_window_never_crosses_two_sessions_of_one_day(db_url):
    """An agent framework keeps every session of a user in one namespace, the same day: a
    turn is read with the turns of its own session only, so a word said in another session
    does not find it; turns that name no session are read with their neighbours as before."""
    async with connected(db_url) as client:
        turns = [
            ("a1", "s-1", "The glacier museum opens at nine."),
            ("a2", "s-1", "Bring a warm coat."),
            ("b1", "s-2", "I like to code in Python."),
            ("b2", "s-2", "Mostly small scripts."),
        ]
        for key, session, text in turns:
            value = {"author": "user", "text": text, "timestamp": "2026-03-02T10:00:00"}
            await call(
                client,
                "memory_put",
                namespace="user:alice:agent",
                key=key,
                value={**value, "session_id": session},
            )
            await call(client, "memory_put", namespace="user:alice:loose", key=key, value=value)
        await caught_up(client)
        for word, own_session in [("glacier", {"a1", "a2"}), ("python", {"b1", "b2"})]:
            found = await call(
                client, "memory_search", query=word, prefix="user:alice:agent", mode="keyword"
            )
            assert {hit["key"] for hit in found["results"]} == own_session, (word, found)
        loose = await call(
            client, "memory_search", query="python", prefix="user:alice:loose", mode="keyword"
        )
        assert {hit["key"] for hit in loose["results"]} == {"a1", "a2", "b1", "b2"}


async def test_neighbours_come_back_in_stored_order(db_url):
    async with connected(db_url) as client:
        await store_conversations(client)
        await caught_up(client)
        result = await call(
            client,
            "memory_search",
            query="shy canal walks",
            prefix="user:alice:chat:nora-and-sam",
            k=1,
            mode="keyword",
            context=2,
        )
        hit = result["results"][0]
        assert hit["key"] == "S1:7"
        assert [(n["offset"], n["key"]) for n in hit["context"]] == [
            (-2, "S1:5"),
            (-1, "S1:6"),
            (1, "S1:8"),
            (2, "S1:9"),
        ]
        assert hit["context"][1]["value"]["text"] == "No way! What's the dog's name?"
        plain = await call(client, "memory_search", query="Biscuit", k=1, mode="keyword")
        assert "context" not in plain["results"][0]


async def test_packing_keeps_whole_memories_within_the_budget(db_url):
    """Through the tool: the hits kept are whole, in ranked order, within the budget."""
    async with connected(db_url) as client:
        namespace = "user:alice:notes"
        await call(
            client, "memory_put", namespace=namespace, key="big", value="comet " * 400 + "tail"
        )
        for n in range(6):
            await call(
                client,
                "memory_put",
                namespace=namespace,
                key=f"small{n}",
                value=f"comet sighting number {n}",
            )
        await caught_up(client)
        everything = await call(client, "memory_search", query="comet tail", mode="keyword", k=10)
        order = [hit["key"] for hit in everything["results"]]
        packed = await call(
            client, "memory_search", query="comet tail", mode="keyword", k=10, max_tokens=60
        )
        kept = [hit["key"] for hit in packed["results"]]
        assert kept and "big" not in kept, kept
        assert kept == [key for key in order if key in kept]  # best first, as ranked
        assert packed["packed"]["used_tokens"] <= 60
        assert packed["packed"]["hits_left_out"] == len(order) - len(kept)
        stored = {f"small{n}": f"comet sighting number {n}" for n in range(6)}
        for hit in packed["results"]:
            assert hit["value"] == stored[hit["key"]]  # whole, never cut


def test_a_memory_too_big_for_what_is_left_is_skipped_and_smaller_ones_still_fit():
    hits = [_hit("a", "x" * 10), _hit("huge", "y " * 500), _hit("b", "z" * 10)]
    kept, packing = pack(hits, 40, tokens=lambda value: len(str(value)))
    assert [hit.key for hit in kept] == ["a", "b"]
    assert packing.used_tokens == 20 and packing.hits_left_out == 1


def test_neighbours_are_packed_nearest_first_and_shown_once():
    near = [_near("n-2", -2, 5), _near("n-1", -1, 5), _near("n+1", 1, 5), _near("a2", 2, 5)]
    hits = [_hit("a", "x" * 5, near), _hit("a2", "y" * 5)]
    kept, packing = pack(hits, 20, tokens=lambda value: len(str(value)))
    # a (5), its nearest neighbours n-1 and n+1, then n-2 (5 each): 20 used; a2 (as a
    # neighbour and as a hit) no longer fits and is counted as left out each way.
    assert [n.key for n in kept[0].context or []] == ["n-2", "n-1", "n+1"]
    assert packing.used_tokens == 20
    assert packing.neighbours_left_out == 1 and packing.hits_left_out == 1


def _hit(key: str, value: Any, context: list[Any] | None = None) -> MemoryHit:
    return MemoryHit(
        namespace="user:alice:n",
        key=key,
        version=1,
        value=value,
        memory_type="semantic",
        metadata={},
        is_deleted=False,
        created_by="alice",
        updated_by="alice",
        created_at="2026-01-01T00:00:00Z",
        score=1.0,
        keyword_rank=1,
        semantic_rank=None,
        semantic_score=None,
        snippet="",
        updated_at="2026-01-01T00:00:00Z",
        context=context,
    )


def _near(key: str, offset: int, size: int) -> MemoryNeighbour:
    return MemoryNeighbour(
        key=key,
        version=1,
        offset=offset,
        value="v" * size,
        memory_type="semantic",
        updated_at="2026-01-01T00:00:00Z",
    )


async def test_packing_counts_neighbours_once(db_url):
    async with connected(db_url) as client:
        await store_conversations(client)
        await caught_up(client)
        packed = await call(
            client,
            "memory_search",
            query="Biscuit dog paw",
            prefix="user:alice:chat:nora-and-sam",
            k=6,
            mode="keyword",
            context=1,
            max_tokens=400,
        )
        seen: list[str] = []
        for hit in packed["results"]:
            seen.append(hit["key"])
            seen.extend(n["key"] for n in hit["context"])
        neighbour_keys = [n["key"] for hit in packed["results"] for n in hit["context"]]
        assert len(neighbour_keys) == len(set(neighbour_keys))
        assert not set(neighbour_keys) & {hit["key"] for hit in packed["results"][:1]}
        assert packed["packed"]["used_tokens"] <= 400


async def test_filters_apply_inside_candidate_selection(db_url):
    """5 matching memories among 4,000 non-matching near neighbours (the same words): all
    5 come back with k=5, for each filter, in every mode."""
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
                        metadata={"team": "blue"},
                    )
                    for n in range(start, start + 1000)
                ],
            )
        await runtime.memories.put_many(
            ALICE,
            [
                PutRequest(
                    "user:alice:reports",
                    f"keep{n}",
                    {"text": text, "n": n, "date": f"2024-06-0{n + 1}"},
                    memory_type="procedural",
                    metadata={"team": "red"},
                )
                for n in range(5)
            ],
        )
        await runtime.memory_indexer.catch_up()
    async with connected(db_url) as client:
        await caught_up(client, timeout=300)
        wanted = {f"keep{n}" for n in range(5)}
        for mode in ("keyword", "semantic", "hybrid"):
            for filters in (
                {"memory_type": "procedural"},
                {"metadata": {"team": "red"}},
                {"after": "2024-06-01T00:00:00Z", "before": "2024-07-01T00:00:00Z"},
            ):
                result = await call(
                    client,
                    "memory_search",
                    query="river otters report",
                    k=5,
                    mode=mode,
                    **filters,
                )
                assert result["mode_used"] == mode
                assert {hit["key"] for hit in result["results"]} == wanted, (mode, filters)


async def test_a_question_naming_a_time_prefers_memories_of_that_time(db_url):
    today = dt.datetime.now(dt.UTC)
    recent = (today - dt.timedelta(days=3)).strftime("%d %B, %Y")
    async with connected(db_url) as client:
        for key, date in [("old", "10 January, 2019"), ("new", recent)]:
            await call(
                client,
                "memory_put",
                namespace="user:alice:diary",
                key=key,
                value={"text": "went hiking in the hills", "date": date},
            )
        await caught_up(client)
        result = await call(
            client,
            "memory_search",
            query="where did I go hiking last week",
            prefix="user:alice:diary",
            k=2,
        )
        assert [hit["key"] for hit in result["results"]] == ["new", "old"]
        in_2019 = await call(
            client,
            "memory_search",
            query="hiking in January 2019",
            prefix="user:alice:diary",
            k=2,
        )
        assert in_2019["results"][0]["key"] == "old"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"context": 6}, "context"),
        ({"context": -1}, "context"),
        ({"max_tokens": 3}, "max_tokens"),
        ({"memory_type": "dream"}, "memory_type"),
        ({"after": "yesterday"}, "ISO 8601"),
        ({"after": "2025-02-01", "before": "2025-01-01"}, "after must be earlier"),
        ({"metadata": {"team": {"nested": 1}}}, "metadata"),
    ],
)
async def test_bad_search_options_are_invalid_input(db_path, args, message):
    async with connected(db_path) as client:
        result = await client.call_tool("memory_search", {"query": "otters", **args})
        assert result.is_error
        text = text_of(result)
        assert text.startswith("invalid_input"), text
        assert message in text, text


async def test_a_question_naming_a_speaker_prefers_what_they_said(db_url):
    """Tom's turn matches more of the question's words, Ines's turn is hers: the question
    asks what Ines thinks."""
    async with connected(db_url) as client:
        for key, speaker, text in [
            ("1", "Tom", "Ines said she thinks the lighthouse trip was great, I think so too."),
            ("2", "Ines", "The lighthouse trip was great."),
        ]:
            await call(
                client,
                "memory_put",
                namespace="user:alice:chat:y",
                key=key,
                value={"speaker": speaker, "text": text},
            )
        await caught_up(client)
        result = await call(
            client,
            "memory_search",
            query="What does Ines think of the lighthouse trip?",
            prefix="user:alice:chat:y",
            k=2,
        )
        assert [hit["key"] for hit in result["results"]] == ["2", "1"]


@pytest.mark.slow
def test_the_conversation_example_runs(tmp_path):
    example = Path(__file__).parent.parent / "examples" / "conversation_recall.py"
    proc = subprocess.run(
        [sys.executable, str(example), "--db", str(tmp_path / "c.db"), "--embedder", "fake"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["results"] and found["packed"]["used_tokens"] <= 300
    assert all("context" in hit for hit in found["results"])
