"""Keyword search finds the same things on both backends: the same corpus and the same
principal on SQLite and on PostgreSQL, every query's hits compared as sets (their order may
differ: BM25 on one, IDF-weighted ts_rank on the other).

The hard case is a small corpus the caller may see inside a big shared database: term
rarity on PostgreSQL comes from table-wide statistics (ANALYZE), so the terms it takes for
rare can all sit in rows the caller may not see, while the caller's rows hold only terms
that are common elsewhere. Documents (a private root beside another owner's big one) and
memories (one user's few beside another user's many) are both checked, with statistics
gathered first, as autovacuum would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from backends import sync_sql
from conftest import settings_for

from abathur_memory.core.principal import Principal
from abathur_memory.memory.memories import PutRequest
from abathur_memory.runtime import open_runtime

pytestmark = pytest.mark.anyio

ALICE = Principal(user="alice", app="abathur", project="website")
BOB = Principal(user="bob", app="abathur", project="elsewhere")
BIG = 400  # bob's files and memories: enough that his words' estimates pass 300 rows

# Alice's few documents speak of values, borrowing and deleting; bob's many do too, and a
# few of his hold the words that are rare in the whole table.
ALICE_DOCS = {
    "values.md": "# Values\n\nA value can be borrowed, and a borrowed value changes.\n",
    "history.md": "# History\n\nEvery version is kept; deleting a memory keeps its history.\n",
    "undo.md": "# Undo\n\nUndo a change by writing the older value again.\n",
    "notes.md": "# Notes\n\nNothing to see here but plain words about gardens.\n",
}
QUERIES = (
    "how do I borrow a value mutably",
    "undo a deleted memory",
    "value history mutably",
    "borrowed gardens",
    "zeppelin value",
)


def _bobs(n: int) -> str:
    rare = " It is mutable, mutably so, like a zeppelin." if n % 80 == 0 else ""
    return (
        f"# Page {n}\n\nA value is borrowed here; deleting memory and history, undo and "
        f"value again.{rare}\n"
    )


def _write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


async def _fill(db: str, alice_root: Path, bob_root: Path) -> None:
    async with open_runtime(settings_for(db)) as runtime:
        await runtime.documents.add_root(f"bob={bob_root}", owner=BOB, visibility="private")
        await runtime.documents.add_root(f"alice={alice_root}", owner=ALICE, visibility="private")
        await runtime.documents.index()
        memories = runtime.memories
        await memories.put_many(
            BOB,
            [PutRequest("user:bob:notes", f"n{n}", _bobs(n)) for n in range(BIG)],
        )
        await memories.put_many(
            ALICE,
            [
                PutRequest("user:alice:notes", name.removesuffix(".md"), text)
                for name, text in ALICE_DOCS.items()
            ],
        )
        await runtime.memory_indexer.catch_up()


async def _found(db: str) -> dict[str, tuple[set, set]]:
    """Per query: alice's keyword hits among documents (path, first line) and memories."""
    out = {}
    async with open_runtime(settings_for(db)) as runtime:
        for query in QUERIES:
            documents = await runtime.documents.search(ALICE, query, 100, "keyword")
            memories = await runtime.memories.search(ALICE, query, k=100, mode="keyword")
            out[query] = (
                {(Path(h.path).name, h.start_line) for h in documents.results},
                {(h.namespace, h.key) for h in memories.results},
            )
    return out


def test_keyword_hits_are_the_same_on_both_backends_in_a_big_shared_database(tmp_path, pg_url):
    alice_root = _write(tmp_path / "alice", ALICE_DOCS)
    bob_root = _write(tmp_path / "bob", {f"p{n:03d}.md": _bobs(n) for n in range(BIG)})
    sqlite = str(tmp_path / "abathur.db")
    for db in (sqlite, pg_url):
        asyncio.run(_fill(db, alice_root, bob_root))
    with sync_sql(pg_url) as sql:
        sql.execute("ANALYZE")  # what autovacuum does soon after: term statistics
        assert (
            sql.scalar(
                "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema()"
                " AND attname = 'tsv' AND most_common_elems IS NOT NULL"
            )
            == 2
        ), "both tsvector columns have statistics"

    on_sqlite, on_postgres = asyncio.run(_found(sqlite)), asyncio.run(_found(pg_url))
    for query in QUERIES:
        documents, memories = on_sqlite[query]
        assert documents and memories, query  # each query finds some of alice's
        assert all(name in ALICE_DOCS for name, _ in documents)
        assert not any(namespace.startswith("user:bob") for namespace, _ in memories)
        assert on_postgres[query] == on_sqlite[query], query


def test_keyword_hits_are_the_same_on_both_backends_in_a_small_corpus(tmp_path, pg_url):
    """The README's example folder alone, statistics gathered: every match is found."""
    examples = Path(__file__).resolve().parents[1] / "examples" / "docs"
    queries = (
        "how do I undo a deleted memory",
        "how do I borrow a value mutably",
        "restore a backup of the database",
        "watch folders for changes",
    )

    async def found(db: str) -> dict[str, set]:
        async with open_runtime(settings_for(db)) as runtime:
            out = {}
            for query in queries:
                result = await runtime.documents.search(None, query, 100, "keyword")
                out[query] = {(h.path, h.start_line) for h in result.results}
            return out

    async def fill(db: str) -> None:
        async with open_runtime(settings_for(db)) as runtime:
            await runtime.documents.add_root(f"examples={examples}")
            await runtime.documents.index()

    sqlite = str(tmp_path / "abathur.db")
    for db in (sqlite, pg_url):
        asyncio.run(fill(db))
    with sync_sql(pg_url) as sql:
        sql.execute("ANALYZE")
    on_sqlite, on_postgres = asyncio.run(found(sqlite)), asyncio.run(found(pg_url))
    assert all(on_sqlite.values())
    assert on_postgres == on_sqlite
