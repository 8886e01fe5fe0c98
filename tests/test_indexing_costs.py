"""What one indexing run costs, counted: a saved file (the watcher's way), a batch of
changes named by path, and a root walk each resolve the embedding space once, read each
changed file once, and write in at most three transactions (scan, claim, chunks)."""

from __future__ import annotations

import pytest
from indexing_helpers import Costs, make_docs, write_tree

from abathur_memory.documents.service import DocumentService
from abathur_memory.embedders.fake import FakeEmbedder

pytestmark = pytest.mark.anyio

FILES = {f"n{i}.md": f"# Note {i}\n\nmarker{i} words about note {i}\n" for i in range(20)}


@pytest.fixture
async def indexed(store, tmp_path, monkeypatch):
    """A root of 20 notes, indexed, and the costs counted from then on."""
    root = write_tree(tmp_path / "notes", FILES)
    docs = make_docs(store, FakeEmbedder(dim=64))
    registered = (await docs.add_root(root)).root
    await docs.index()
    costs = Costs(store, monkeypatch)
    await costs.start()
    return docs, registered, costs


async def _found(docs: DocumentService, query: str) -> list[str]:
    return [hit.path for hit in (await docs.search(None, query, mode="keyword")).results]


async def test_a_saved_file_is_read_once_in_three_write_transactions(indexed):
    docs, root, costs = indexed
    (root.path / "n3.md").write_text("# Note 3\n\nzanzibar harbour at dawn\n")
    report = await docs.index_files(root, ["n3.md"])
    assert report.work is not None and report.work.documents_done == 1
    assert costs.reads == {"n3.md": 1}
    assert costs.spaces == 1
    assert await costs.writes() <= 3
    assert await _found(docs, "zanzibar") == ["notes/n3.md"]


async def test_a_batch_of_named_changes_is_read_once_in_three_write_transactions(indexed):
    """Saved, created, deleted and renamed files handed over together: one scan transaction
    (the rename is a move, nothing re-embedded), one claim, one write of the chunks."""
    docs, root, costs = indexed
    (root.path / "n1.md").write_text("# Note 1\n\nquokka meadow\n")
    (root.path / "n2.md").write_text("# Note 2\n\nwombat burrow\n")
    (root.path / "new1.md").write_text("# New 1\n\nnarwhal tusk\n")
    (root.path / "new2.md").write_text("# New 2\n\naxolotl pond\n")
    (root.path / "n5.md").unlink()
    (root.path / "n7.md").rename(root.path / "seven.md")
    named = ["n1.md", "n2.md", "new1.md", "new2.md", "n5.md", "n7.md", "seven.md"]
    report = await docs.index_files(root, named)
    assert report.work is not None and report.work.documents_done == 4
    assert report.scans[0].moved == 1 and report.scans[0].deleted == 1
    assert costs.reads == {name: 1 for name in ("n1.md", "n2.md", "new1.md", "new2.md", "seven.md")}
    assert costs.spaces == 1
    assert await costs.writes() <= 3
    for word, path in (
        ("quokka", "n1"),
        ("wombat", "n2"),
        ("narwhal", "new1"),
        ("axolotl", "new2"),
    ):
        assert await _found(docs, word) == [f"notes/{path}.md"]
    assert await _found(docs, "marker5") == []
    assert await _found(docs, "marker7") == ["notes/seven.md"]


async def test_a_root_walk_reads_each_changed_file_once_in_three_write_transactions(indexed):
    docs, root, costs = indexed
    for i in (2, 4, 6):
        (root.path / f"n{i}.md").write_text(f"# Note {i}\n\nchanged{i} on the walk\n")
    (root.path / "sub").mkdir()
    (root.path / "sub" / "fresh.md").write_text("# Fresh\n\npangolin scales\n")
    report = await docs.index([root])
    assert report.work is not None and report.work.documents_done == 4
    assert costs.reads == {"n2.md": 1, "n4.md": 1, "n6.md": 1, "sub/fresh.md": 1}
    assert costs.spaces == 1
    assert await costs.writes() <= 3
    assert await _found(docs, "pangolin") == ["notes/sub/fresh.md"]
    assert await _found(docs, "changed4") == ["notes/n4.md"]


async def test_a_file_over_the_read_budget_is_read_again_by_the_worker(indexed, monkeypatch):
    """The bytes a run keeps are bounded: past the budget the worker reads the file itself,
    and the result is the same."""
    from abathur_memory.documents import reads

    monkeypatch.setattr(reads, "BUDGET_BYTES", 10)
    docs, root, costs = indexed
    (root.path / "n8.md").write_text("# Note 8\n\nokapi forest, more than ten bytes\n")
    await docs.index_files(root, ["n8.md"])
    assert costs.reads == {"n8.md": 2}
    assert await _found(docs, "okapi") == ["notes/n8.md"]
