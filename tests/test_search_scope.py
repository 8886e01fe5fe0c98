"""How memory_search keeps to what a scope may read without a pass over every memory
(store/sqlite/memory_candidates.py), and how it counts what is not searchable yet without
one (``pending``): both were a scan of the whole table on every search."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import settings_for

from abathur_memory.core.principal import Principal
from abathur_memory.core.search import MemoryFilters, MemoryScope
from abathur_memory.embedders.fake import FakeEmbedder
from abathur_memory.memory.memories import PutRequest
from abathur_memory.runtime import open_runtime
from abathur_memory.search.query import keyword_terms
from abathur_memory.store.postgres.store import PostgresStore
from abathur_memory.store.sqlite import ann, driver, vector_index
from abathur_memory.store.sqlite import memory_candidates as candidates
from abathur_memory.store.sqlite.spaces import memory_space
from abathur_memory.store.sqlite.terms import TermCounts

pytestmark = pytest.mark.anyio

ALICE = Principal(user="alice", app="abathur")
WORDS = [
    "river",
    "stone",
    "lantern",
    "harbour",
    "meadow",
    "orchard",
    "glacier",
    "falcon",
    "copper",
    "violet",
]


def text(n: int) -> str:
    """Memories that share words in many proportions (distinct BM25 scores and vectors)."""
    return " ".join(WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(2 + n % 5)) + f" n{n}"


async def seed(db_path: Path, alice_share: float, count: int = 1500) -> None:
    """``count`` memories, ``alice_share`` of them alice's and the rest bob's (which alice
    may not read), interleaved so they are near each other in every ranking."""
    step = max(1, round(1 / alice_share)) if alice_share < 1 else 1
    async with open_runtime(settings_for(db_path, ann=False)) as runtime:
        for owner in ("alice", "bob"):
            requests = [
                PutRequest(f"user:{owner}:notes", f"m{n}", text(n))
                for n in range(count)
                if (n % step == 0) == (owner == "alice")
            ]
            admin = Principal(user=owner, app="abathur")
            for start in range(0, len(requests), 500):
                await runtime.memories.put_many(admin, requests[start : start + 500])
        await runtime.memory_indexer.catch_up()


def namespaces(conn: driver.Connection, entry_ids: set[int]) -> set[str]:
    marks = ",".join("?" for _ in entry_ids)
    return {
        row[0]
        for row in conn.execute(
            f"SELECT namespace FROM memory_fts_keys WHERE entry_id IN ({marks})", list(entry_ids)
        )
    }


def both_ways(conn: driver.Connection, query: str, pool: int) -> dict[bool, Any]:
    """The keyword list and the exact semantic list, with the scope listed first (narrow)
    and applied to what an unfiltered ranking found (broad)."""
    space = memory_space(conn, FakeEmbedder(dim=64).identity)
    assert space is not None
    vector = asyncio.run(FakeEmbedder(dim=64).embed_query(query))
    cache = vector_index.VectorIndex()
    memories = candidates.memory_count(conn)
    scope = candidates.ScopeSql.of(conn, MemoryScope(ALICE, None, MemoryFilters()), memories)
    assert not scope.narrow  # no prefix: broad
    out = {}
    for narrow in (True, False):
        scoped = candidates.ScopeSql(scope.where, scope.params, narrow)
        words = candidates.keywords(
            conn, tuple(keyword_terms(query)), scoped, pool, memories, TermCounts()
        )
        rows, _ = candidates.vector_rows(
            conn,
            ann.AnnIndexes(None),
            lambda: cache.codes(conn, space, space.memory_vectors),
            space,
            vector,
            scoped,
            2 * pool,
            20,
        )
        semantic, _ = candidates.rerank_entries(space, vector, rows, pool)
        out[narrow] = (words, semantic)
    return out


@pytest.mark.parametrize("alice_share", [1.0, 0.5, 0.04])
async def test_a_broad_scope_finds_what_listing_the_scope_first_finds(
    db_path: Path, alice_share: float
) -> None:
    """Everything readable: the unfiltered ranking is the answer, the same as listing the
    scope first. Half: one widening re-ranks at least as many readable candidates, the
    nearest first, so its best hits are at least as near. 4%: too few passed, so the
    readable vectors are listed, as the narrow path does. The keyword list is the same in
    every case, and nothing alice may not read is ever ranked."""
    await seed(db_path, alice_share)
    conn = driver.connect(db_path, read_only=True)
    try:
        for query in ("river lantern", "glacier falcon copper", "orchard meadow harbour stone"):
            found = await asyncio.to_thread(both_ways, conn, query, 30)
            (narrow_words, narrow_semantic) = found[True]
            (broad_words, broad_semantic) = found[False]
            assert broad_words and broad_semantic
            assert [round(s, 9) for _, s in broad_words] == [round(s, 9) for _, s in narrow_words]
            if alice_share == 0.5:
                near = sum(s for _, s in broad_semantic[:10])
                assert near >= sum(s for _, s in narrow_semantic[:10]) - 1e-6
            else:
                assert broad_semantic == narrow_semantic
            seen = {e for e, _ in (*broad_words, *broad_semantic)}
            assert "user:bob:notes" not in namespaces(conn, seen)  # (the app's are readable)
    finally:
        conn.close()


async def test_a_prefix_with_few_memories_lists_them_first(db_path: Path) -> None:
    await seed(db_path, 1.0, count=300)
    async with open_runtime(settings_for(db_path)) as runtime:
        await runtime.memories.put(ALICE, "user:alice:tiny", "t", "river lantern in the tiny box")
        await runtime.memory_indexer.catch_up()
    conn = driver.connect(db_path, read_only=True)
    try:
        memories = candidates.memory_count(conn)
        tiny = MemoryScope(ALICE, "user:alice:tiny", MemoryFilters())
        assert candidates.ScopeSql.of(conn, tiny, memories).narrow
        notes = MemoryScope(ALICE, "user:alice:notes", MemoryFilters())
        assert not candidates.ScopeSql.of(conn, notes, memories).narrow
        assert not candidates.ScopeSql.of(conn, MemoryScope(ALICE, "user"), memories).narrow
    finally:
        conn.close()


async def test_a_query_of_common_words_keeps_its_rarest(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A term in more than COMMON_TERM_ROWS memories (and COMMON_TERM_SHARE of them) is left
    out of the keyword ranking when a rarer one remains; when none does, the rarest stays;
    when the rarest terms' rows (CANDIDATE_ROWS) are fewer than wanted, every kept term's
    rows are ranked."""
    from abathur_memory.store.sqlite import terms

    async with open_runtime(settings_for(db_path, ann=False)) as runtime:
        await runtime.memories.put_many(
            ALICE,
            [PutRequest("user:alice:n", f"k{n}", f"common words number {n}") for n in range(30)]
            + [PutRequest("user:alice:n", "w", "common unicorn")]
            + [PutRequest("user:alice:n", f"w{n}", f"words only {n}") for n in range(5)],
        )
        await runtime.memory_indexer.catch_up()
        monkeypatch.setattr(terms, "CANDIDATE_ROWS", 1)
        short = await runtime.memories.search(ALICE, "common unicorn", k=40, mode="keyword")
        assert len(short.results) == 31  # unicorn's one row is too few: every kept term
        monkeypatch.setattr(terms, "COMMON_TERM_ROWS", 10)
        found = await runtime.memories.search(ALICE, "common unicorn", k=40, mode="keyword")
        assert [h.key for h in found.results] == ["w"]
        rarest = await runtime.memories.search(ALICE, "common words", k=40, mode="keyword")
        keys = {h.key for h in rarest.results}  # "common" (31 memories), not "words" (35)
        assert len(keys) == 31 and "w" in keys and not keys & {f"w{n}" for n in range(5)}


async def test_pending_reads_the_changes_after_the_vectors_were_complete(db_url: str) -> None:
    """Before the indexer has recorded where the vectors were complete, every memory
    without vectors is counted; after, only the changes since; a rebuild of the keyword
    index forgets the record."""
    async with open_runtime(settings_for(db_url)) as runtime:
        await runtime.memories.put_many(
            ALICE, [PutRequest("user:alice:n", f"k{n}", f"note {n}") for n in range(12)]
        )
        before = await runtime.memories.search(ALICE, "note", k=3, mode="semantic")
        assert before.pending >= 12
        await runtime.memory_indexer.catch_up()
        runtime.memory_indexer.wake()  # (the seeded app memories: vectors on the next round)
        await runtime.memory_indexer.catch_up()
        caught_up = await runtime.memories.search(ALICE, "note", k=3, mode="semantic")
        assert caught_up.pending == 0
        await runtime.memories.put(ALICE, "user:alice:n", "k99", "one more note")
        await runtime.memories.delete(ALICE, "user:alice:n", "k0")
        changed = await runtime.memories.search(ALICE, "note", k=3, mode="semantic")
        assert changed.pending == 2
        await runtime.memory_indexer.catch_up()
        assert (await runtime.memories.search(ALICE, "note", k=3)).pending == 0
        await runtime.store.memory_index.request_rebuild()
        assert (await runtime.memories.search(ALICE, "note", k=3)).pending > 0
        await runtime.memory_indexer.catch_up()
        assert (await runtime.memories.search(ALICE, "note", k=3)).pending == 0


def test_the_vectors_record_stays_with_its_database() -> None:
    """The record names a space of this database and a position in its change log: a copy
    (migrate, either way) takes the meta rows of the data, never the index's progress."""
    from abathur_memory.store.copy_tables import BASE_TABLES, CLEAR_META

    (meta,) = [table for table in BASE_TABLES if table.name == "meta"]
    conn = driver.connect(":memory:")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    keys = [
        "schema_version",
        "memory_index_audit_id",
        "memory_index_snapshot",
        "memory_index_vectors_s3",
        "migration_progress",
        "embedding_model",
    ]
    conn.executemany("INSERT INTO meta VALUES (?, '1')", [(key,) for key in keys])
    copied = [row[0] for row in conn.execute(f"SELECT key FROM meta WHERE {meta.where}")]
    assert copied == ["embedding_model"]
    conn.execute(CLEAR_META)
    assert {row[0] for row in conn.execute("SELECT key FROM meta")} == set(keys[:5])


def test_codes_load_in_slices_into_arrays_sized_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 1-bit codes are read a slice at a time into preallocated arrays: the same codes
    as reading every row at once, with a peak near the arrays' own size (a list of every
    row first took about ten times that)."""
    import tracemalloc

    monkeypatch.setattr(vector_index, "LOAD_SLICE", 1000)
    conn = driver.connect(":memory:")
    conn.execute("CREATE TABLE v (id INTEGER PRIMARY KEY, code BLOB NOT NULL)")
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 256, size=(20_000, 48), dtype=np.uint8)
    conn.executemany(
        "INSERT INTO v VALUES (?, ?)", [(3 * i + 1, codes[i].tobytes()) for i in range(20_000)]
    )
    tracemalloc.start()
    loaded = vector_index._load(conn, "v", "id", 384, 5, after=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert loaded.generation == 5 and loaded.max_id == 3 * 19_999 + 1
    assert np.array_equal(loaded.ids, np.arange(20_000) * 3 + 1)
    assert loaded.words.tobytes() == codes.tobytes()
    arrays = loaded.ids.nbytes + loaded.words.nbytes
    assert peak < 2 * arrays, (peak, arrays)
    later = vector_index._load(conn, "v", "id", 384, 6, after=30_001)
    assert later.ids[0] == 30_004 and len(later.ids) == 20_000 - 10_001


async def test_bulk_writes_to_postgresql_refresh_its_statistics(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past BULK_ROWS rows written by put_many, or by the keyword index catching up, the
    tables written are analysed in the background (not left to autovacuum's next round);
    fewer rows analyse nothing."""
    from abathur_memory.store.postgres import statistics

    monkeypatch.setattr(statistics, "BULK_ROWS", 200)

    def analysed(table: str = "memory_entries") -> bool:
        from backends import sync_sql

        with sync_sql(pg_url) as conn:
            return bool(
                conn.scalar(
                    "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables"
                    f" WHERE schemaname = current_schema() AND relname = '{table}'"
                )
            )

    async with open_runtime(settings_for(pg_url)) as runtime:
        assert isinstance(runtime.store, PostgresStore)
        keeper = runtime.store.database.statistics
        await runtime.memories.put_many(
            ALICE, [PutRequest("user:alice:n", f"a{n}", f"note {n}") for n in range(150)]
        )
        await keeper.idle()
        assert keeper.passes == 0 and not analysed()
        await runtime.memories.put_many(
            ALICE, [PutRequest("user:alice:n", f"b{n}", f"note {n}") for n in range(100)]
        )
        await keeper.idle()
        assert keeper.passes == 1 and analysed()
        assert not analysed("memory_search_index")
        await runtime.memory_indexer.catch_up()  # the keyword index takes the 250 memories
        await keeper.idle()
        assert keeper.passes >= 2 and analysed("memory_search_index")  # (and the vectors)


async def test_an_idle_round_reads_no_vectors_once_they_are_recorded_complete(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The indexer's idle rounds (every second once the model is loaded) looked for
    memories without vectors, stale vectors and stale contexts: passes over the whole
    table. With the vectors recorded complete at the keyword index's position, a round
    with nothing new reads none of that; a change brings the passes back."""
    async with open_runtime(settings_for(db_url)) as runtime:
        await runtime.memories.put_many(
            ALICE, [PutRequest("user:alice:n", f"k{n}", f"note {n}") for n in range(12)]
        )
        indexer = runtime.memory_indexer
        for _ in range(2):  # (the seeded app memories get their vectors on a second round)
            indexer.wake()
            await indexer.catch_up()
        index = runtime.store.memory_index
        passes: list[str] = []
        unembedded, has_stale = index.unembedded, index.has_stale_vectors

        async def counted_unembedded(space, limit):
            passes.append("unembedded")
            return await unembedded(space, limit)

        async def counted_stale(space):
            passes.append("stale")
            return await has_stale(space)

        monkeypatch.setattr(index, "unembedded", counted_unembedded)
        monkeypatch.setattr(index, "has_stale_vectors", counted_stale)
        indexer.wake()
        done = await indexer.catch_up()
        assert done.embedded == 0 and passes == []
        await runtime.memories.put(ALICE, "user:alice:n", "k99", "one more note")
        done = await indexer.catch_up()
        assert done.embedded == 1 and "unembedded" in passes and "stale" in passes
        assert (await runtime.memories.search(ALICE, "note", k=3)).pending == 0
