"""The approximate vector index on SQLite (store/sqlite/ann.py): used above a size, filters
inside the candidate step, a derived cache that is checked before it is trusted, saved beside
the database with the generation it reflects, and rebuilt rather than copied."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from cli_helpers import run_cli
from conftest import settings_for

from abathur_memory.memory.memories import PutRequest
from abathur_memory.ops import migration
from abathur_memory.runtime import Runtime, open_runtime
from abathur_memory.search.results import Filters
from abathur_memory.store.sqlite import ann, ann_files, backup, driver

pytestmark = pytest.mark.anyio

NEAR = 4000  # non-matching memories nearer to the query than the matching ones
MATCHING = 5
QUERY = "alpha beta gamma delta epsilon"


async def settle(runtime: Runtime, timeout: float = 300.0) -> None:
    """Wait for the background index work (a guard against hanging, not a timing)."""
    graphs = store_of(runtime).ann
    deadline = asyncio.get_running_loop().time() + timeout
    while not graphs.idle():
        assert asyncio.get_running_loop().time() < deadline, "the index never settled"
        await asyncio.sleep(0.05)


def store_of(runtime: Runtime) -> Any:
    return runtime.store


async def seed(runtime: Runtime, near: int = NEAR, matching: int = MATCHING) -> None:
    principal = runtime.principal
    requests = [
        PutRequest("project:website:other", f"o{i}", f"alpha beta gamma delta epsilon {i}")
        for i in range(near)
    ] + [
        PutRequest("project:website:keep", f"k{i}", f"alpha zeta theta iota {i}")
        for i in range(matching)
    ]
    for start in range(0, len(requests), 500):
        await runtime.memories.put_many(principal, requests[start : start + 500])
    await runtime.memory_indexer.catch_up()


def runtime_for(db_path: Path, **overrides: Any) -> Any:
    return open_runtime(settings_for(db_path, **overrides))


@pytest.fixture
async def seeded(db_path: Path) -> AsyncIterator[Path]:
    async with runtime_for(db_path, ann=False) as runtime:
        await seed(runtime)
    yield db_path


async def search(
    runtime: Runtime, prefix: str | None = None, k: int = MATCHING, query: str = QUERY
) -> Any:
    return await runtime.memories.search(
        runtime.principal, query, prefix=prefix, k=k, mode="semantic"
    )


async def approximate(runtime: Runtime, **kwargs: Any) -> Any:
    """A search once the background index is current (the first one starts it)."""
    await search(runtime, **kwargs)
    await settle(runtime)
    return await search(runtime, **kwargs)


async def test_filtered_search_inside_the_graph_still_returns_k_hits(seeded: Path) -> None:
    async with runtime_for(seeded, ann_min_vectors=1000, ann_selective_fraction=0.0) as runtime:
        unfiltered = await approximate(runtime)
        assert unfiltered.vector_search == ann.APPROXIMATE
        assert all(hit.namespace == "project:website:other" for hit in unfiltered.results)
        filtered = await search(runtime, prefix="project:website:keep")
        assert filtered.vector_search == ann.APPROXIMATE  # the graph walk, with the filter
        assert sorted(hit.key for hit in filtered.results) == [f"k{i}" for i in range(MATCHING)]


async def test_a_memory_type_filter_acts_inside_the_graph(db_path: Path) -> None:
    """The same shape through another filter (memory_type): every filter is one more SQL
    condition on the allowed ids, nothing in the index itself."""
    async with runtime_for(db_path, ann=False) as runtime:
        await seed(runtime, matching=0)
        await runtime.memories.put_many(
            runtime.principal,
            [
                PutRequest("project:website:other", f"p{i}", f"alpha zeta theta {i}", "procedural")
                for i in range(MATCHING)
            ],
        )
        await runtime.memory_indexer.catch_up()
    async with runtime_for(db_path, ann_min_vectors=1000, ann_selective_fraction=0.0) as runtime:
        await approximate(runtime)
        found = await runtime.memories.search(
            runtime.principal, QUERY, k=MATCHING, mode="semantic", memory_type="procedural"
        )
    assert found.vector_search == ann.APPROXIMATE
    assert sorted(hit.key for hit in found.results) == [f"p{i}" for i in range(MATCHING)]


async def test_a_highly_selective_filter_takes_the_exact_path(seeded: Path) -> None:
    async with runtime_for(seeded, ann_min_vectors=1000) as runtime:  # default fraction
        await approximate(runtime)
        filtered = await search(runtime, prefix="project:website:keep")
        assert filtered.vector_search == ann.SELECTIVE
        assert sorted(hit.key for hit in filtered.results) == [f"k{i}" for i in range(MATCHING)]


async def test_approximate_answers_are_the_true_nearest(seeded: Path) -> None:
    """Against brute force over every stored vector (the 1-bit coarse pass of the exact path
    misses some of these near-ties; the graph plus the exact re-rank does not)."""
    async with runtime_for(seeded, ann_min_vectors=1000) as runtime:
        fast = await approximate(runtime, k=10)
        query = await runtime.embedder.embed_query(QUERY)
    assert fast.vector_search == ann.APPROXIMATE
    conn = driver.connect(seeded, read_only=True)
    try:
        best: dict[int, float] = {}
        for entry_id, blob in conn.execute(
            "SELECT entry_id, embedding FROM memory_vectors_s1 WHERE part >= 0"
        ):
            score = float(np.frombuffer(blob, dtype=np.float32) @ query)
            best[entry_id] = max(score, best.get(entry_id, -2.0))
    finally:
        conn.close()
    truth = sorted(best.values(), reverse=True)[:10]
    assert [h.semantic_score for h in fast.results] == [round(s, 4) for s in truth]


async def test_below_the_threshold_nothing_is_built(seeded: Path) -> None:
    async with runtime_for(seeded, ann_min_vectors=1_000_000) as runtime:
        result = await search(runtime)
        await settle(runtime)
        assert result.vector_search is None
        assert store_of(runtime).ann.rounds == 0
    assert not ann_files.directory(seeded).exists()


async def test_missing_index_falls_back_says_so_then_is_saved_with_its_generation(
    seeded: Path,
) -> None:
    async with runtime_for(seeded, ann_min_vectors=1000) as runtime:
        first = await search(runtime)
        assert first.vector_search == ann.CATCHING_UP
        assert len(first.results) == MATCHING  # answered exactly meanwhile
        await settle(runtime)
        assert (await search(runtime)).vector_search == ann.APPROXIMATE
    saved = ann_files.saved(seeded)
    assert [p.name for p in saved] == ["memory_vectors_s1.faiss"]
    header = ann_files.read_stamp(saved[0])
    assert header is not None
    stamp, removed = header
    conn = driver.connect(seeded, read_only=True)
    try:
        generation = conn.execute("SELECT generation FROM embedding_spaces WHERE id = 1").fetchone()
        count = conn.execute("SELECT count(*) FROM memory_vectors_s1").fetchone()[0]
    finally:
        conn.close()
    assert (stamp.generation, stamp.count, removed) == (generation[0], count, [])


async def test_a_saved_index_is_checked_on_open_and_reused(seeded: Path) -> None:
    async with runtime_for(seeded, ann_min_vectors=1000) as runtime:
        await approximate(runtime)
    async with runtime_for(seeded, ann_min_vectors=1000) as runtime:
        await runtime.start_serving()  # checks the saved index in the background
        await settle(runtime)
        graphs = store_of(runtime).ann
        assert graphs.rebuilds == 0 and graphs.rounds >= 1
        assert (await search(runtime)).vector_search == ann.APPROXIMATE


async def test_a_stale_saved_index_is_not_used_until_brought_up_to_date(seeded: Path) -> None:
    async with runtime_for(seeded, ann_min_vectors=1000) as runtime:
        await approximate(runtime)
    async with runtime_for(seeded, ann=False) as runtime:  # a writer that keeps no index
        await runtime.memories.put(
            runtime.principal, "project:website:keep", "fresh", "omega sigma kappa lambda"
        )
        await runtime.memories.delete(runtime.principal, "project:website:other", "o1")
        await runtime.memory_indexer.catch_up()
    async with runtime_for(seeded, ann_min_vectors=1000) as runtime:
        stale = await search(runtime, k=10)
        assert stale.vector_search == ann.CATCHING_UP
        fresh = await approximate(runtime, k=3, query="omega sigma kappa lambda")
        assert fresh.vector_search == ann.APPROXIMATE
        assert fresh.results[0].key == "fresh"
        gone = await search(runtime, k=10, query="alpha beta gamma delta epsilon 1")
        assert gone.vector_search == ann.APPROXIMATE
        assert "o1" not in [hit.key for hit in gone.results]
        assert store_of(runtime).ann.rebuilds == 0  # updated in place, not rebuilt


async def test_a_commit_is_searched_exactly_until_the_graph_has_it(seeded: Path) -> None:
    """In one serving process: after a put the graph is behind the snapshot, so searches take
    the exact path (and find the new memory) until the background update catches up."""
    async with runtime_for(seeded, ann_min_vectors=1000) as runtime:
        await approximate(runtime)
        await runtime.memories.put(
            runtime.principal, "project:website:keep", "fresh", "omega sigma kappa lambda"
        )
        await runtime.memory_indexer.catch_up()
        behind = await search(runtime, k=1, query="omega sigma kappa lambda")
        assert behind.vector_search == ann.CATCHING_UP
        assert [hit.key for hit in behind.results] == ["fresh"]
        await settle(runtime)
        caught_up = await search(runtime, k=1, query="omega sigma kappa lambda")
        assert caught_up.vector_search == ann.APPROXIMATE
        assert [hit.key for hit in caught_up.results] == ["fresh"]
        assert store_of(runtime).ann.rebuilds == 1  # the first build; the put was an update


async def test_an_index_of_other_vectors_is_rebuilt_not_trusted(
    seeded: Path, tmp_path: Path
) -> None:
    """A saved index copied from another database whose stamp happens to match."""
    async with runtime_for(seeded, ann_min_vectors=1000) as runtime:
        await approximate(runtime)
    other = tmp_path / "other" / "abathur.db"
    other.parent.mkdir()
    async with runtime_for(other, ann=False) as runtime:
        principal = runtime.principal
        await runtime.memories.put_many(
            principal,
            [PutRequest("project:website:x", f"x{i}", f"unrelated words {i}") for i in range(NEAR)]
            + [PutRequest("project:website:y", f"y{i}", f"more words {i}") for i in range(5)],
        )
        await runtime.memory_indexer.catch_up()
    saved = ann_files.saved(seeded)[0]
    _forge_stamp_for(saved, other)
    async with runtime_for(other, ann_min_vectors=1000) as runtime:
        await approximate(runtime)
        assert store_of(runtime).ann.rebuilds == 1


def _forge_stamp_for(saved: Path, db_path: Path) -> None:
    """Copy ``saved`` beside ``db_path`` with a stamp naming that database's table state."""
    loaded = ann_files.load(saved)
    assert loaded is not None
    stamp, removed, index = loaded
    conn = driver.connect(db_path, read_only=True)
    try:
        created, generation = conn.execute(
            "SELECT created_at, generation FROM embedding_spaces WHERE id = 1"
        ).fetchone()
        ids = np.array(
            [r[0] for r in conn.execute("SELECT id FROM memory_vectors_s1")], dtype=np.int64
        )
    finally:
        conn.close()
    forged = ann_files.Stamp(
        stamp.space_id,
        created,
        stamp.table,
        stamp.dim,
        generation,
        len(ids),
        int(ids.max()),
        ann_files.digest(ids),
    )
    ann_files.save(db_path, forged, removed, index)


def test_a_damaged_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "x.faiss"
    path.write_bytes(ann_files.MAGIC + b"{not json\n")
    assert ann_files.load(path) is None and ann_files.read_stamp(path) is None
    path.write_bytes(b"something else")
    assert ann_files.load(path) is None


async def test_document_filters_act_inside_the_graph(tmp_path: Path) -> None:
    """Path and root filters on chunk vectors: 5 matching among 4,000 nearer chunks."""
    notes, kept = tmp_path / "notes", tmp_path / "kept"
    (notes / "other").mkdir(parents=True)
    (notes / "keep").mkdir()
    kept.mkdir()
    for f in range(NEAR // 100):
        sections = (f"## Part {f}-{i}\n\n{QUERY} {f} {i}" for i in range(100))
        (notes / "other" / f"o{f}.md").write_text(f"# Other {f}\n\n" + "\n\n".join(sections))
    matching = "\n\n".join(f"## Kept {i}\n\nalpha zeta theta iota {i}" for i in range(MATCHING))
    (notes / "keep" / "k.md").write_text("# Keep\n\n" + matching)
    (kept / "k.md").write_text("# Keep\n\n" + matching)
    db = tmp_path / "docs.db"
    async with runtime_for(db, ann_min_vectors=1000, ann_selective_fraction=0.0) as runtime:
        for root in (notes, kept):
            await runtime.documents.add_root(str(root))
        await runtime.documents.index()

        async def semantic(filters: Filters) -> Any:
            return await runtime.documents.search(
                None, QUERY, k=MATCHING, mode="semantic", filters=filters
            )

        first = await semantic(Filters())
        assert first.vector_search == ann.CATCHING_UP
        await settle(runtime)
        unfiltered = await semantic(Filters())
        assert unfiltered.vector_search == ann.APPROXIMATE
        assert all(hit.path.startswith("notes/other/") for hit in unfiltered.results)
        by_path = await semantic(Filters(path_glob="keep/*"))
        by_root = await semantic(Filters(root="kept"))
    for found, path in ((by_path, "notes/keep/k.md"), (by_root, "kept/k.md")):
        assert found.vector_search == ann.APPROXIMATE
        assert sorted(hit.heading[-1] for hit in found.results) == [
            f"Kept {i}" for i in range(MATCHING)
        ]
        assert {hit.path for hit in found.results} == {path}


# -- doctor, backup, restore, migrate ---------------------------------------------------------


@pytest.fixture
async def with_saved_index(seeded: Path) -> Path:
    async with runtime_for(seeded, ann_min_vectors=1000) as runtime:
        await approximate(runtime)
    assert ann_files.saved(seeded)
    return seeded


def doctor_warning(capsys: pytest.CaptureFixture[str], db_path: Path, table: str) -> str:
    """The doctor's warning about the saved index of ``table`` (the report still passes)."""
    code, checks = doctor_checks(capsys, db_path)
    check = checks[f"approximate index {table}"]
    assert code == 0 and check["ok"] and check["warning"], check
    return str(check["detail"])


def doctor_checks(capsys: pytest.CaptureFixture[str], db_path: Path) -> Any:
    result = run_cli(capsys, "doctor", "--json", "--db", str(db_path))
    assert "Traceback" not in result.err
    checks = {c["name"]: c for c in result.json()["checks"]}
    return result.code, checks


async def test_doctor_checks_the_saved_index_against_the_table(
    with_saved_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "approximate index memory_vectors_s1"
    code, checks = doctor_checks(capsys, with_saved_index)
    assert code == 0 and checks[name]["ok"] and "matches the table" in checks[name]["detail"]
    # An index of other vectors under a stamp that names this table's state.
    other = tmp_path / "other" / "abathur.db"
    other.parent.mkdir()
    async with runtime_for(other, ann=False) as runtime:
        await seed(runtime, near=NEAR + 10, matching=0)
    saved = ann_files.saved(with_saved_index)[0]
    _forge_stamp_for(saved, other)  # this index, stamped as if built from ``other``
    code, checks = doctor_checks(capsys, other)
    assert code == 1 and not checks[name]["ok"]
    repaired = run_cli(capsys, "doctor", "--repair", "--db", str(other))
    assert repaired.code == 0
    assert "removed the approximate index memory_vectors_s1.faiss" in repaired.err
    assert ann_files.saved(other) == []
    code, checks = doctor_checks(capsys, other)
    assert code == 0 and checks["approximate index"]["ok"]


async def test_a_stale_saved_index_is_a_warning_for_the_doctor(
    with_saved_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with runtime_for(with_saved_index, ann=False) as runtime:
        await runtime.memories.put(runtime.principal, "project:website:keep", "n", "new words")
        await runtime.memory_indexer.catch_up()
    assert "generation" in doctor_warning(capsys, with_saved_index, "memory_vectors_s1")


async def test_an_index_saved_in_the_older_format_is_rebuilt_and_the_doctor_warns(
    with_saved_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file an older version saved (an HNSW graph under header 1) is never read: the
    doctor warns, and a server replaces it with an index of the current format."""
    saved = ann_files.saved(with_saved_index)[0]
    body = saved.read_bytes()
    saved.write_bytes(b"abathur-ann 1\n" + body[len(ann_files.MAGIC) :])
    assert "older version" in doctor_warning(capsys, with_saved_index, "memory_vectors_s1")
    async with runtime_for(with_saved_index, ann_min_vectors=1000) as runtime:
        await runtime.start_serving()
        await settle(runtime)
        found = await search(runtime)
        assert found.vector_search == ann.APPROXIMATE
        assert store_of(runtime).ann.rebuilds == 1
    assert saved.read_bytes().startswith(ann_files.MAGIC)


async def test_restore_rebuilds_the_index_rather_than_keeping_it(
    with_saved_index: Path, tmp_path: Path
) -> None:
    saved = backup.backup(with_saved_index, tmp_path / "saved.db").path
    assert not ann_files.directory(saved).exists()  # the backup is the database alone
    backup.restore(saved, with_saved_index)
    assert not ann_files.directory(with_saved_index).exists()
    async with runtime_for(with_saved_index, ann_min_vectors=1000) as runtime:
        assert (await approximate(runtime)).vector_search == ann.APPROXIMATE
        assert store_of(runtime).ann.rebuilds == 1


async def test_migrate_into_a_file_drops_an_index_saved_beside_it(
    with_saved_index: Path, tmp_path: Path
) -> None:
    target = tmp_path / "copy" / "abathur.db"
    target.parent.mkdir()
    shutil.copytree(ann_files.directory(with_saved_index), ann_files.directory(target))
    report = migration.copy(str(with_saved_index), str(target), settings_for(with_saved_index))
    assert report.state == "complete"
    assert not ann_files.directory(target).exists()


async def test_an_index_left_from_a_replaced_space_is_cleared(
    with_saved_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model change drops the old space's tables; its saved index is never used again."""
    loaded = ann_files.load(ann_files.saved(with_saved_index)[0])
    assert loaded is not None
    stamp, removed, index = loaded
    gone = dataclasses.replace(stamp, space_id=99, table="memory_vectors_s99")
    ann_files.save(with_saved_index, gone, removed, index)
    assert "no longer has" in doctor_warning(capsys, with_saved_index, "memory_vectors_s99")
    async with runtime_for(with_saved_index, ann_min_vectors=1000) as runtime:
        await runtime.start_serving()
        await settle(runtime)
    assert [p.name for p in ann_files.saved(with_saved_index)] == ["memory_vectors_s1.faiss"]


def vector_file(path: Path, matrix: npt.NDArray[np.float32]) -> tuple[Any, Any]:
    """A database holding ``matrix`` as one space's vectors (ids 1..n), nothing else; its
    connection and the space."""
    from abathur_memory.core.spaces import EmbeddingIdentity
    from abathur_memory.store.sqlite import chunks, spaces
    from abathur_memory.store.sqlite import migrate as runner

    conn = driver.connect(path)
    runner.migrate(conn)
    conn.execute("PRAGMA foreign_keys = OFF")  # vectors without chunk rows
    conn.execute("BEGIN IMMEDIATE")
    identity = EmbeddingIdentity("fake", "random", matrix.shape[1], 512)
    written = spaces.space_for(conn, identity)
    conn.executemany(
        f"INSERT INTO {written.vectors} (chunk_id, embedding, code) VALUES (?, ?, ?)",
        ((i + 1, *chunks.encoded(v)) for i, v in enumerate(matrix)),
    )
    conn.execute("COMMIT")
    space = spaces.active_space(conn)
    assert space is not None
    return conn, space


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> npt.NDArray[np.float32]:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_index_calibrates_its_scan_to_the_vectors(tmp_path: Path) -> None:
    """nprobe is calibrated on each build: on 20,000 random 128-dimensional vectors (hard
    for an inverted file: no clusters, so a query's true neighbours lie in many lists and
    the narrowest scan misses most of them) the index widens its scan until the approximate
    path's recall@10 against exact search reaches 0.98 on queries it never saw; nprobe is
    saved with the index."""
    from abathur_memory.store.sqlite import vector_index

    rng = np.random.default_rng(7)
    matrix, queries = unit_rows(rng, 20_000, 128), unit_rows(rng, 50, 128)
    path = tmp_path / "random.db"
    conn, space = vector_file(path, matrix)
    graphs = ann.AnnIndexes(path, ann.AnnSettings(min_vectors=1))
    try:
        graphs.sync(space.id, space.vectors)
        graph = graphs._graphs[(space.id, space.vectors)]
        assert graph.nprobe > ann.NPROBE  # wider than the narrowest scan
        cache = vector_index.VectorIndex()
        found = 0
        for q in queries:
            ids, note = graphs.candidates(
                conn, lambda: cache.codes(conn, space), space, space.vectors, q, 100, None, 10
            )
            assert note == ann.APPROXIMATE
            best = {i for i, _ in vector_index.rerank(conn, space, q, ids, 10)}
            found += len(best & {int(i) + 1 for i in np.argsort(-(matrix @ q))[:10]})
        assert found / (10 * len(queries)) >= 0.98
        reopened = ann.AnnIndexes(path, ann.AnnSettings(min_vectors=1))
        try:
            assert reopened.sync(space.id, space.vectors) == "loaded"
            assert reopened._graphs[(space.id, space.vectors)].nprobe == graph.nprobe
        finally:
            reopened.close()
    finally:
        graphs.close()
        conn.close()


@pytest.mark.parametrize("n", [1, 5, 40, 700])
def test_a_table_with_few_vectors_still_gets_a_working_index(tmp_path: Path, n: int) -> None:
    """With the threshold set low, a table smaller than k-means' usual 39 vectors per list
    gets fewer lists rather than a failed build (a table of 100 or fewer is scanned whole),
    and its candidates hold the true nearest."""
    from abathur_memory.store.sqlite import vector_index

    rng = np.random.default_rng(n)
    matrix = unit_rows(rng, n, 16)
    path = tmp_path / "few.db"
    conn, space = vector_file(path, matrix)
    graphs = ann.AnnIndexes(path, ann.AnnSettings(min_vectors=1))
    try:
        assert graphs.sync(space.id, space.vectors) == "rebuilt"
        assert 1 <= graphs._graphs[(space.id, space.vectors)].nlist <= n
        q = matrix[0]
        ids, note = graphs.candidates(
            conn,
            lambda: vector_index.VectorIndex().codes(conn, space),
            space,
            space.vectors,
            q,
            100,
            None,
            min(10, n),
        )
        assert note == ann.APPROXIMATE
        assert len(ids) == min(n, 100)
        best = {int(i) + 1 for i in np.argsort(-(matrix @ q))[: min(10, n)]}
        assert best <= set(ids.tolist())
    finally:
        graphs.close()
        conn.close()
