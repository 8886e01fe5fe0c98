"""doctor checks that the document index agrees with itself, and --repair fixes drift."""

from __future__ import annotations

import pytest
from cli_helpers import run_cli
from indexing_helpers import write_tree

from abathur_memory.store.sqlite import driver


@pytest.fixture
def indexed_db(tmp_path, db_path, capsys, monkeypatch):
    monkeypatch.setenv("ABATHUR_EMBEDDER", "fake")
    root = write_tree(tmp_path / "docs")
    result = run_cli(capsys, "index", str(root), "--db", str(db_path), "--json")
    assert result.code == 0, result.err
    return db_path


def _consistency(capsys, db_path):
    report = run_cli(capsys, "doctor", "--json", "--db", str(db_path)).json()
    return {c["name"]: c for c in report["checks"]}["index consistency"], report["ok"]


def _break(db_path, *statements):
    conn = driver.connect(db_path)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def test_a_healthy_index_passes(capsys, indexed_db):
    check, ok = _consistency(capsys, indexed_db)
    assert check["ok"] and ok


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        (
            ["DELETE FROM chunk_vectors_s1 WHERE chunk_id = (SELECT min(id) FROM chunks_s1)"],
            "chunks without vectors",
        ),
        (
            [
                "UPDATE document_index SET chunk_count = 99"
                " WHERE id = (SELECT min(id) FROM document_index)"
            ],
            "chunk counts disagree",
        ),
        (
            [
                "DELETE FROM space_documents"
                " WHERE document_id = (SELECT min(id) FROM document_index)"
            ],
            "marked synced are not indexed",
        ),
        (
            [
                "INSERT INTO chunks_fts_s1(chunks_fts_s1, rowid, heading, text)"
                " SELECT 'delete', id, heading, text FROM chunks_s1 LIMIT 1"
            ],
            "does not match",
        ),
        (
            ["DELETE FROM memory_fts WHERE rowid = (SELECT min(entry_id) FROM memory_fts_keys)"],
            "memory index entries point at missing",
        ),
    ],
)
def test_drift_is_reported_and_repaired(capsys, indexed_db, statements, expected, monkeypatch):
    # The memory index is built on first use; build it so it can be damaged.
    from abathur_memory.store.sqlite.memory_index import sync_keywords

    conn = driver.connect(indexed_db)
    conn.execute("BEGIN IMMEDIATE")
    sync_keywords(conn)
    conn.execute("COMMIT")
    conn.close()
    _break(indexed_db, *statements)
    check, ok = _consistency(capsys, indexed_db)
    assert not check["ok"] and not ok
    assert expected in check["detail"]
    assert run_cli(capsys, "doctor", "--json", "--db", str(indexed_db)).code == 1
    repaired = run_cli(capsys, "doctor", "--repair", "--json", "--db", str(indexed_db))
    assert repaired.code == 0, repaired.out
    check, ok = _consistency(capsys, indexed_db)
    assert check["ok"] and ok
    # Search still finds everything after the repair.
    found = run_cli(capsys, "search", "write-ahead logging", "--json", "--db", str(indexed_db))
    assert found.json()["results"][0]["path"] == "docs/notes/beta.md"
