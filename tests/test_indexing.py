"""Indexing: scan, chunk, embed, store; changes, moves, deletes, failures, resumption."""

from __future__ import annotations

import asyncio
import os
import types
from collections.abc import Callable
from typing import Any

import pytest
from backends import json_text, json_value, table_names
from indexing_helpers import DOCS, FlakyEmbedder, long_line, make_docs, write_tree

from abathur_memory.documents.worker import Progress
from abathur_memory.embedders.fake import FakeEmbedder
from abathur_memory.errors import InvalidInput, NotFound, Unavailable
from abathur_memory.store.postgres import documents as postgres_documents
from abathur_memory.store.sqlite import chunks as sqlite_chunks

pytestmark = pytest.mark.anyio


@pytest.fixture
def tree(tmp_path):
    return write_tree(tmp_path / "docs")


@pytest.fixture
def embedder():
    return FakeEmbedder(dim=64)


@pytest.fixture
def docs(store, embedder):
    return make_docs(store, embedder, max_file_bytes=4096)


async def _space(raw):
    return await raw.store.spaces.active()


async def _counts(raw):
    """Rows per part of the index. On PostgreSQL a chunk row holds its keyword vector and
    its embedding; on SQLite they are rows of their own tables."""
    space = await _space(raw)
    parts: tuple[tuple[str, str], ...]
    if raw.postgres:
        parts = (
            ("chunks", f"SELECT count(*) FROM {space.chunks}"),
            ("fts", f"SELECT count(*) FROM {space.chunks} WHERE tsv IS NOT NULL"),
            ("vectors", f"SELECT count(*) FROM {space.chunks} WHERE embedding IS NOT NULL"),
        )
    else:
        parts = tuple(
            (name, f"SELECT count(*) FROM {table}")
            for name, table in (
                ("chunks", space.chunks),
                ("fts", space.fts),
                ("vectors", space.vectors),
            )
        )
    parts += (
        ("space_documents", "SELECT count(*) FROM space_documents"),
        ("documents", "SELECT count(*) FROM document_index"),
    )
    return {name: (await raw.fetchone(sql))[0] for name, sql in parts}


async def test_index_a_tree(docs, raw, tree, embedder):
    root = (await docs.add_root(tree)).root
    assert root.name == "docs"
    report = await docs.index()
    assert report.scans[0].new == 3
    assert report.work.documents_done == 3
    rows = await raw.fetchall(
        "SELECT file_path, title, sync_status, chunk_count, embedding_model, document_type, tags"
        " FROM document_index ORDER BY file_path"
    )
    assert [(r["file_path"], r["sync_status"]) for r in rows] == [
        ("docs/alpha.md", "synced"),
        ("docs/notes/beta.md", "synced"),
        ("docs/notes/gamma.markdown", "synced"),
    ]
    beta = rows[1]
    assert (beta["title"], beta["document_type"], json_value(beta["tags"])) == (
        "Beta notes",
        "design",
        ["db", "sqlite"],
    )
    counts = await _counts(raw)
    assert (
        counts["chunks"]
        == counts["fts"]
        == counts["vectors"]
        == sum(r["chunk_count"] for r in rows)
    )
    assert {r["embedding_model"] for r in rows} == {"fake:hash-v1"}
    meta = dict(await raw.fetchall("SELECT key, value FROM meta"))
    assert meta["embedding_model"] == "fake:hash-v1" and meta["embedding_dim"] == "64"


async def test_a_noop_rescan_reads_and_embeds_nothing(docs, tree, embedder):
    await docs.add_root(tree)
    await docs.index()
    embedded = embedder.embedded_texts
    report = await docs.index()
    assert report.scans[0].unchanged == 3 and report.scans[0].changed == 0
    assert report.work.documents_done == 0
    assert embedder.embedded_texts == embedded


async def test_a_changed_file_is_reembedded_keeping_unchanged_chunks(docs, raw, tree, embedder):
    await docs.add_root(tree)
    await docs.index()
    before = embedder.embedded_texts
    path = tree / "alpha.md"
    path.write_text(DOCS["alpha.md"].replace("Foxes are clever animals.", "Foxes are cunning."))
    report = await docs.index()
    assert report.scans[0].changed == 1
    assert report.work.chunks_embedded == 1  # only the section that changed
    assert report.work.chunks_reused >= 1
    assert embedder.embedded_texts == before + 1
    status = (
        await raw.fetchone(
            "SELECT sync_status FROM document_index WHERE file_path = 'docs/alpha.md'"
        )
    )[0]
    assert status == "synced"
    hits = await docs.search(None, "cunning", mode="keyword")
    assert hits.results[0].path == "docs/alpha.md"


async def test_a_moved_file_keeps_its_vectors(docs, raw, tree, embedder):
    await docs.add_root(tree)
    await docs.index()
    before = embedder.embedded_texts
    (tree / "archive").mkdir()
    os.rename(tree / "notes" / "beta.md", tree / "archive" / "beta-2024.md")
    report = await docs.index()
    assert report.scans[0].moved == 1 and report.scans[0].deleted == 0
    assert embedder.embedded_texts == before
    paths = [r[0] for r in await raw.fetchall("SELECT file_path FROM document_index ORDER BY 1")]
    assert "docs/archive/beta-2024.md" in paths and "docs/notes/beta.md" not in paths
    result = await docs.search(None, "write-ahead logging")
    assert result.results[0].path == "docs/archive/beta-2024.md"


async def test_a_deleted_file_leaves_every_table(docs, raw, tree):
    await docs.add_root(tree)
    await docs.index()
    before = await _counts(raw)
    (tree / "notes" / "gamma.markdown").unlink()
    report = await docs.index()
    assert report.scans[0].deleted == 1
    after = await _counts(raw)
    assert after["documents"] == before["documents"] - 1
    assert after["chunks"] == after["fts"] == after["vectors"] < before["chunks"]
    assert after["space_documents"] == 2
    assert (await docs.search(None, "vector meaning", mode="keyword")).results == [] or all(
        h.path != "docs/notes/gamma.markdown"
        for h in (await docs.search(None, "vector meaning", mode="keyword")).results
    )


async def test_gitignore_excludes_and_other_files(docs, raw, tmp_path):
    root = write_tree(
        tmp_path / "repo",
        {
            "keep.md": "# Keep\nkept\n",
            "build/out.md": "# Built\nignored by gitignore\n",
            "drafts/wip.md": "# WIP\nexcluded by pattern\n",
            "node_modules/pkg/README.md": "# Dependency\nnever indexed\n",
            "image.png": "not markdown",
            "sub/.gitignore": "secret.md\n",
            "sub/secret.md": "# Secret\nignored by a nested gitignore\n",
            "sub/open.md": "# Open\nindexed\n",
            ".gitignore": "build/\n",
        },
    )
    os.symlink(root / "keep.md", root / "link.md")
    await docs.add_root(root, excludes=("drafts/",))
    report = await docs.index()
    paths = sorted(r[0] for r in await raw.fetchall("SELECT file_path FROM document_index"))
    assert paths == ["repo/keep.md", "repo/sub/open.md"]
    assert report.scans[0].skipped["link.md"] == "symbolic link (not followed)"


async def test_symlink_loops_do_not_hang_the_scan(docs, raw, tmp_path):
    root = write_tree(tmp_path / "loop", {"a.md": "# A\ntext\n"})
    os.symlink(root, root / "again")
    await docs.add_root(root)
    report = await docs.index()
    assert report.scans[0].files == 1


async def test_bad_files_are_recorded_not_fatal(docs, raw, tmp_path):
    root = write_tree(tmp_path / "bad", {"good.md": "# Good\nfine\n", "empty.md": ""})
    (root / "binary.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00" * 10)
    (root / "latin1.md").write_bytes("# Caf\xe9\n".encode("latin-1"))
    (root / "huge.md").write_text("# Big\n" + "word " * 2000)  # over the 4 KiB test cap
    await docs.add_root(root)
    report = await docs.index()
    rows = {
        r["file_path"]: (r["sync_status"], r["error"])
        for r in await raw.fetchall(
            f"SELECT file_path, sync_status, {json_text(raw, 'metadata', 'error')} AS error"
            " FROM document_index"
        )
    }
    assert rows["bad/good.md"] == ("synced", None)
    assert rows["bad/empty.md"] == ("failed", "empty file")
    assert rows["bad/binary.md"] == ("failed", "binary content in a markdown file")
    assert rows["bad/latin1.md"][0] == "failed" and "not UTF-8" in rows["bad/latin1.md"][1]
    assert rows["bad/huge.md"][0] == "failed" and "limit" in rows["bad/huge.md"][1]
    assert report.scans[0].failed == 1  # the size cap is known from the scan already
    # No half-written documents: failed ones have no chunks.
    space = await _space(raw)
    ids = [r[0] for r in await raw.fetchall(f"SELECT DISTINCT document_id FROM {space.chunks}")]
    assert len(ids) == 1
    # Fixing a file makes it indexable again.
    (root / "latin1.md").write_text("# Café\nnow UTF-8\n")
    await docs.index()
    status = await raw.fetchone(
        "SELECT sync_status FROM document_index WHERE file_path = 'bad/latin1.md'"
    )
    assert status[0] == "synced"


async def test_a_root_that_does_not_exist(docs, tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        await docs.add_root(tmp_path / "nowhere")
    file = tmp_path / "f.md"
    file.write_text("x")
    with pytest.raises(InvalidInput, match="is a file"):
        await docs.add_root(file)


async def test_an_interrupted_run_resumes_without_redoing_work(raw, tree):
    flaky = FlakyEmbedder(ok_calls=1, dim=64)
    first = make_docs(raw.store, flaky)
    await first.add_root(tree)
    worker = first.worker()
    worker.batch_documents = 1
    await first.scan()
    with pytest.raises(Unavailable):
        await worker.run()
    done = (await raw.fetchone("SELECT count(*) FROM space_documents"))[0]
    assert done == 1
    leased = (
        await raw.fetchone("SELECT count(*) FROM document_index WHERE lease_owner IS NOT NULL")
    )[0]
    assert leased == 0  # leases released on failure
    steady = FakeEmbedder(dim=64)
    second = make_docs(raw.store, steady)
    report = await second.index()
    assert report.work.documents_done == 2  # only what was left
    assert (await raw.fetchone("SELECT count(*) FROM space_documents"))[0] == 3


async def test_a_failed_write_leaves_no_half_document(docs, raw, tree, monkeypatch):
    await docs.add_root(tree)
    target: types.ModuleType
    crash: Callable[..., Any]
    if raw.postgres:  # the last statement of the batch's transaction fails
        target, name = postgres_documents.spaces, "bump_generation"

        async def crash(conn, space):
            raise RuntimeError("killed mid-write")

    else:  # the second document's record fails, its chunks and vectors written
        target, name = sqlite_chunks, "_record_document"
        real = sqlite_chunks._record_document
        calls = {"n": 0}

        def crash(conn, space, document):
            calls["n"] += 1
            real(conn, space, document)
            if calls["n"] == 2:
                raise RuntimeError("killed mid-write")

    with monkeypatch.context() as patched:
        patched.setattr(target, name, crash)
        with pytest.raises(RuntimeError):
            await docs.index()
    space = await _space(raw)
    counts = await _counts(raw)
    # The batch's transaction rolled back: no chunks, vectors or FTS rows at all.
    assert counts["chunks"] == counts["vectors"] == counts["fts"] == counts["space_documents"] == 0
    assert space is not None
    await docs.index()
    assert (await _counts(raw))["space_documents"] == 3


async def test_two_workers_never_embed_the_same_document(raw, tmp_path):
    files = {f"d{i}.md": f"# Doc {i}\n\nunique words number {i}\n" for i in range(40)}
    root = write_tree(tmp_path / "many", files)
    a, b = FakeEmbedder(dim=64), FakeEmbedder(dim=64)
    one, two = make_docs(raw.store, a, worker_owner="a"), make_docs(raw.store, b, worker_owner="b")
    await one.add_root(root)
    await one.scan()
    w1, w2 = one.worker(), two.worker()
    w1.batch_documents = w2.batch_documents = 3
    r1, r2 = await asyncio.gather(w1.run(), w2.run())
    assert r1.documents_done + r2.documents_done == 40
    assert a.embedded_texts + b.embedded_texts == 40


async def test_changing_the_model_rebuilds_beside_the_old_index(raw, tree):
    old = make_docs(raw.store, FakeEmbedder(dim=64, model="old"))
    await old.add_root(tree)
    await old.index()
    old_space = await _space(raw)
    new_embedder = FakeEmbedder(dim=32, model="new")
    new = make_docs(raw.store, new_embedder)
    worker = new.worker()
    worker.batch_documents = 1
    space = await worker.target_space()
    assert space.status == "building"
    status = await new.status()
    assert status.model == "fake:old" and status.rebuild.model == "fake:new"
    # While building, searches answer from the old index (keywords, with a clear note).
    during = await new.search(None, "fox")
    assert during.results and during.mode_used == "keyword" and "rebuild" in during.degraded
    await worker.run()
    after = await new.status()
    assert after.model == "fake:new" and after.rebuild is None and after.dimensions == 32
    tables = await table_names(raw)
    assert not {old_space.chunks, old_space.fts, old_space.vectors} & tables  # old index dropped
    spaces_left = await raw.fetchall("SELECT model_id, status FROM embedding_spaces")
    assert [tuple(r) for r in spaces_left] == [("fake:new", "active")]
    result = await new.search(None, "fox")
    assert result.mode_used == "hybrid" and result.results[0].path == "docs/alpha.md"
    synced = await raw.fetchall("SELECT DISTINCT sync_status, embedding_model FROM document_index")
    assert [tuple(r) for r in synced] == [("synced", "fake:new")]


async def test_an_unreadable_file_is_recorded_and_the_rest_indexed(
    docs, raw, tmp_path, monkeypatch
):
    """Permission denied is recorded as the document's failure; the run goes on. Root reads
    any file whatever its mode, so the OS refusal is also simulated where chmod cannot."""
    import errno

    root = write_tree(tmp_path / "perm", {"good.md": "# Good\nfine\n", "locked.md": "# L\nx\n"})
    locked = root / "locked.md"
    locked.chmod(0)
    real_open = os.open

    def refusing(path, flags, *args, **kwargs):
        if str(path).endswith("locked.md"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    await docs.add_root(root)
    report = await docs.index()
    rows = {
        r["file_path"]: (r["sync_status"], r["error"], r["chunk_count"])
        for r in await raw.fetchall(
            f"SELECT file_path, sync_status, {json_text(raw, 'metadata', 'error')} AS error,"
            " chunk_count FROM document_index"
        )
    }
    assert rows["perm/good.md"] == ("synced", None, 1)
    assert rows["perm/locked.md"] == ("failed", "cannot read locked.md: Permission denied", 0)
    assert report.scans[0].failed == 1
    space = await _space(raw)
    assert (await raw.fetchone(f"SELECT count(DISTINCT document_id) FROM {space.chunks}"))[0] == 1

    # Readable again and changed: the next run indexes it.
    monkeypatch.setattr(os, "open", real_open)
    locked.chmod(0o644)
    locked.write_text("# L\nreadable now\n")
    await docs.index()
    status = await raw.fetchone(
        "SELECT sync_status FROM document_index WHERE file_path = 'perm/locked.md'"
    )
    assert status[0] == "synced"


async def test_a_file_unreadable_when_the_worker_reads_it(docs, raw, tmp_path, monkeypatch):
    """Readable at the scan, refused when read for chunking: failed, to be retried later."""
    import errno
    from pathlib import Path

    root = write_tree(tmp_path / "late", {"good.md": "# Good\nfine\n", "locked.md": "# L\nx\n"})
    real_open = os.open

    def refusing(path, flags, *args, **kwargs):  # root ignores file modes: refuse by hand
        if Path(path).name == "locked.md":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    await docs.add_root(root)
    await docs.scan()  # readable at the scan
    monkeypatch.setattr(os, "open", refusing)
    report = await docs.index()
    row = await raw.fetchone(
        f"SELECT sync_status, {json_text(raw, 'metadata', 'error')}, chunk_count"
        " FROM document_index"
        " WHERE file_path = 'late/locked.md'"
    )
    assert tuple(row) == ("failed", "cannot read locked.md: Permission denied", 0)
    assert report.work.documents_done == 1 and report.work.documents_failed == 1


async def test_progress_counts_bytes_and_another_indexers_documents_are_reported(
    store, embedder, tmp_path
):
    """The time estimate counts bytes (files differ in size; the first may be tiny), and a run
    that finds documents leased by another indexer says how many, instead of "0 indexed"."""
    import asyncio

    from abathur_memory.documents.worker import IndexWorker

    sizes = {f"f{i:02d}.md": "# T\n\n" + "word " * (10 + 400 * (i % 3)) for i in range(12)}
    docs = make_docs(store, embedder)
    await docs.add_root(write_tree(tmp_path / "d", sizes))
    await docs.scan()  # the documents are known and pending; nobody has embedded them
    entered, release = asyncio.Event(), asyncio.Event()

    class Blocking(FakeEmbedder):
        async def embed_documents(self, texts):
            entered.set()
            await release.wait()
            return await super().embed_documents(texts)

    holder = IndexWorker(store, Blocking(dim=64), batch_documents=2, owner="other-host:1:a")
    held = asyncio.create_task(holder.run())
    await asyncio.wait_for(entered.wait(), 10)  # it holds its first two documents
    states = []
    ours = IndexWorker(store, embedder, owner="this-host:2:b")
    done = await ours.run(lambda state: states.append((state.bytes_done, state.bytes_total)))
    release.set()
    await held
    assert done.documents_done == 10 and done.held_elsewhere == 2
    total = states[0][1]
    assert total == sum(len(text.encode()) for text in sizes.values())
    assert states[-1][0] < total  # the two held documents' bytes were never ours
    assert [b for b, _ in states] == sorted(b for b, _ in states)


async def test_a_cancelled_run_keeps_the_documents_it_finished(raw, tmp_path):
    """Documents are written as their vectors come in, not at the end of a batch of 16: a
    run cancelled while the model embeds the third document keeps the first two (synced),
    and the third stays pending, unleased, for the next run."""
    from abathur_memory.documents.worker import IndexWorker

    long = "# Long\n\n" + "\n\n".join(f"paragraph {i} " + "word " * 300 for i in range(60))
    files = {"a.md": "# A\n\nfirst\n", "b.md": "# B\n\nsecond\n", "c.md": long}
    root = write_tree(tmp_path / "d", files)
    entered, never = asyncio.Event(), asyncio.Event()

    class Stuck(FakeEmbedder):
        async def embed_documents(self, texts):
            if any("paragraph 40 " in text for text in texts):  # well inside c.md
                entered.set()
                await never.wait()
            return await super().embed_documents(texts)

    docs = make_docs(raw.store, Stuck(dim=64))
    await docs.add_root(root)
    await docs.scan()
    worker = IndexWorker(raw.store, docs.embedder)
    assert worker.batch_documents >= 3  # all three are one batch
    states: list[Progress] = []
    run = asyncio.create_task(worker.run(states.append))
    await asyncio.wait_for(entered.wait(), 30)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    rows = await raw.fetchall(
        "SELECT file_path, sync_status, lease_owner FROM document_index ORDER BY file_path"
    )
    assert [tuple(r) for r in rows] == [
        ("d/a.md", "synced", None),
        ("d/b.md", "synced", None),
        ("d/c.md", "pending", None),
    ]
    assert states[-1].documents_done == 2
    report = await make_docs(raw.store, FakeEmbedder(dim=64)).index()
    assert report.work.documents_done == 1


async def test_a_cancelled_run_stops_chunking_a_large_file(raw, tmp_path):
    """Chunking runs in a thread, which a cancelled task would leave running to the end of
    the file (SIGINT then waited minutes for it): it stops at its next token count."""
    import threading
    import time

    from abathur_memory.documents.worker import IndexWorker

    counted = threading.Event()

    class SlowCounting(FakeEmbedder):
        counts = 0

        def count_tokens(self, text):
            SlowCounting.counts += 1
            counted.set()
            time.sleep(0.005)  # chunking this file takes minutes at this pace
            return super().count_tokens(text)

    root = write_tree(tmp_path / "d", {"big.md": " ".join(f"w{i}" for i in range(400_000))})
    docs = make_docs(raw.store, SlowCounting(dim=64))
    await docs.add_root(root)
    await docs.scan()
    run = asyncio.create_task(IndexWorker(raw.store, docs.embedder).run())
    while not counted.is_set():
        await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await asyncio.sleep(0.05)
    stopped_at = SlowCounting.counts
    await asyncio.sleep(0.5)  # a hundred counts' time
    assert SlowCounting.counts == stopped_at, "the chunking thread kept going"
    row = await raw.fetchone("SELECT sync_status, lease_owner FROM document_index")
    assert tuple(row) == ("pending", None)


class _CheapVectors(FakeEmbedder):
    """The fake model with vectors that cost nothing to compute (a 10 MB file has 1.3
    million words; the fake hashes each with its trigrams)."""

    def vectors(self, texts):
        import numpy as np

        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            rows[row, hash(text) % self.dim] = 1.0
        return rows


async def test_a_ten_megabyte_one_line_file_is_indexed(raw, tmp_path):
    text = long_line(1_600_000) + " needle\n"
    assert 9_000_000 < len(text) < 10 * 1024 * 1024
    docs = make_docs(raw.store, _CheapVectors(dim=64))
    await docs.add_root(write_tree(tmp_path / "d", {"huge.md": text}))
    report = await docs.index()
    assert report.work.documents_done == 1 and report.failed_count == 0
    found = await docs.search(None, "needle", mode="keyword")
    assert [hit.path for hit in found.results] == ["d/huge.md"]
    chunks = (await raw.fetchone("SELECT chunk_count FROM document_index"))[0]
    assert chunks > 1000
