"""Several servers' memory indexers on one PostgreSQL database: one works at a time, and the
next one to take the lock sees everything the previous one committed (no duplicate keys in
the keyword index, nothing missed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from acting import open_acting
from backends import sync_sql
from conftest import settings_for

from abathur_memory.store.postgres import memory_index

pytestmark = pytest.mark.anyio

ROUNDS = 8
PUTS = 12  # per round, half through each server
# The lock statement made slow (a busy server): the second indexer's statement starts while
# the first still holds the lock, and takes the lock once the first has committed.
LOCK_DELAY_S = 0.2
STAGGER_S = 0.1


T = TypeVar("T")


async def _later(delay: float, work: Awaitable[T]) -> T:
    await asyncio.sleep(delay)
    return await work


async def test_two_indexers_take_turns_without_redoing_each_others_work(
    pg_url, monkeypatch, caplog
):
    monkeypatch.setattr(
        memory_index, "_TRY_LOCK", memory_index._TRY_LOCK + f" FROM pg_sleep({LOCK_DELAY_S})"
    )
    caplog.set_level(logging.INFO)
    async with (
        open_acting(settings_for(pg_url)) as one,
        open_acting(settings_for(pg_url)) as two,
    ):
        for round_ in range(ROUNDS):
            for n in range(PUTS):
                server = one if n % 2 else two
                key = f"k{(round_ * PUTS + n) % 30}"  # keys come back: updates, not only inserts
                await server.memories.put("user:alice:notes", key, f"round {round_} note {n}")
            if round_ % 3 == 2:  # a memory that is gone again: indexed, then dropped
                await two.memories.put("user:alice:notes", f"gone{round_}", "brief")
                await one.memories.delete("user:alice:notes", f"gone{round_}")
            results = await asyncio.gather(
                one.runtime.memory_indexer.catch_up(),
                _later(STAGGER_S, two.runtime.memory_indexer.catch_up()),
                return_exceptions=True,
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            assert not failures, failures
        await one.runtime.memory_indexer.catch_up()
        assert not await one.runtime.store.memory_index.behind()

    assert "duplicate key" not in caplog.text
    with sync_sql(pg_url) as sql:
        live = sql.execute(
            "SELECT DISTINCT ON (namespace, key) id, namespace, key, is_deleted"
            " FROM memory_entries WHERE namespace = 'user:alice:notes'"
            " ORDER BY namespace, key, version DESC"
        ).fetchall()
        indexed = sql.execute(
            "SELECT entry_id, namespace, key FROM memory_search_index"
            " WHERE namespace = 'user:alice:notes'"
        ).fetchall()
    expected = sorted((r[0], r[1], r[2]) for r in live if not r[3])
    assert sorted(tuple(r) for r in indexed) == expected
    assert len(expected) == 30
