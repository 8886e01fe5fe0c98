"""memory_get and memory_put on PostgreSQL cost one network round trip each (issue 18),
counted from libpq's trace of what the client sends (tests/pg_wire.py), never timed.

A get reads the latest version and the links that can close its validity in one statement
(it took a second round trip for the key's links); a put sends its key locks and its
statement in one pipeline. Once warm, both run prepared statements (nothing parsed).
"""

from __future__ import annotations

import pg_wire
import pytest
from acting import Acting
from conftest import settings_for

from abathur_memory.core.principal import Principal
from abathur_memory.errors import Conflict, NotFound
from abathur_memory.runtime import open_runtime

pytestmark = pytest.mark.anyio

NS = "user:alice:notes"
ALICE = Principal(user="alice", app="abathur", project="website")
WARM = 6  # psycopg prepares a statement on its 5th use on a connection (per connection)


@pytest.fixture
async def acting(pg_url):
    async with open_runtime(settings_for(pg_url)) as runtime:
        yield Acting(runtime, ALICE)


async def _linked(acting: Acting) -> None:
    """ "plain" without links; "old" superseded by "new" (its validity closed)."""
    await acting.memories.put(NS, "plain", {"v": 1})
    await acting.memories.put(NS, "old", "lives in Berlin", valid_from="2020-01-01")
    await acting.memories.put(NS, "new", "moved to Lisbon", valid_from="2024-03-01")
    await acting.links.link(ALICE, "supersedes", NS, "new", NS, "old", "moved")
    await acting.links.link(ALICE, "related", NS, "plain", NS, "new")


async def test_memory_get_is_one_statement_in_one_round_trip(acting):
    await _linked(acting)
    database = acting.runtime.store.database
    for key in ("plain", "old", "new", "missing"):
        async with pg_wire.counting(database) as wire:
            try:
                await acting.memories.get(NS, key)
            except NotFound:
                assert key == "missing"
        assert (wire.round_trips, wire.statements, wire.checkouts) == (1, 1, 1), (key, wire.trace)
    old = await acting.memories.get(NS, "old")
    assert old.valid_to == "2024-03-01T00:00:00.000Z"  # closed by the link read with it
    assert (await acting.memories.get(NS, "new")).valid_to is None


async def test_memory_put_is_one_round_trip(acting):
    database = acting.runtime.store.database
    async with pg_wire.counting(database) as wire:
        result = await acting.memories.put(NS, "k", {"v": 0})
    assert result.created and result.version == 1
    # the key's locks, then the put (its audit row included), sent together
    assert (wire.round_trips, wire.statements, wire.checkouts) == (1, 2, 1), wire.trace
    async with pg_wire.counting(database) as wire:
        with pytest.raises(Conflict):
            await acting.memories.put(NS, "k", {"v": 1}, expected_version=7)
    assert (wire.round_trips, wire.checkouts) == (1, 1), wire.trace


async def test_warm_gets_and_puts_parse_nothing(acting):
    await _linked(acting)
    database = acting.runtime.store.database
    for n in range(WARM * database.pool.max_size):
        await acting.memories.get(NS, "old")
        await acting.memories.put(NS, "k", {"v": n})
    async with pg_wire.counting(database) as wire:
        await acting.memories.get(NS, "old")
        await acting.memories.put(NS, "k", {"v": "warm"})
    assert wire.statements == 3 and wire.parses == 0, wire.trace
