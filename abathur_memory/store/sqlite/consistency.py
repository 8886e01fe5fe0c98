"""Do document_index, the chunks, the full-text index and the vectors agree?

``check`` reports disagreements as doctor checks; ``repair`` marks the documents involved
for re-indexing (the caller then runs the indexer) and rebuilds the full-text indexes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from abathur_memory.store.sqlite import driver, memory_index, spaces
from abathur_memory.store.sqlite.checks import Check


@dataclass
class Drift:
    documents: set[int] = field(default_factory=set)  # to re-index
    fts_broken: bool = False
    memory_index_broken: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # normal states worth knowing, not damage


def find_drift(conn: driver.Connection) -> Drift:
    drift = Drift()
    space = spaces.active_space(conn)
    if space is not None:
        _chunks_and_vectors(conn, space, drift)
        fts = _fts_ok(conn, space.fts)
        drift.fts_broken = fts is False
        if drift.fts_broken:
            drift.problems.append(f"{space.fts} does not match {space.chunks}")
        elif fts is None:
            drift.notes.append(
                f"{space.fts} not compared with {space.chunks} (the file is read-only)"
            )
    _memory_index(conn, drift)
    return drift


def _chunks_and_vectors(conn: driver.Connection, space: spaces.Space, drift: Drift) -> None:
    without_vector = conn.execute(
        f"SELECT DISTINCT c.document_id FROM {space.chunks} AS c"
        f" LEFT JOIN {space.vectors} AS v ON v.chunk_id = c.id WHERE v.chunk_id IS NULL"
    ).fetchall()
    if without_vector:
        drift.problems.append(f"{len(without_vector)} documents have chunks without vectors")
        drift.documents.update(r[0] for r in without_vector)
    orphan_vectors = conn.execute(
        f"SELECT count(*) FROM {space.vectors} AS v"
        f" LEFT JOIN {space.chunks} AS c ON c.id = v.chunk_id WHERE c.id IS NULL"
    ).fetchone()[0]
    if orphan_vectors:
        drift.problems.append(f"{orphan_vectors} vectors belong to no chunk")
    miscounted = conn.execute(
        "SELECT d.id FROM document_index AS d"
        " JOIN space_documents AS sd ON sd.document_id = d.id AND sd.space_id = ?"
        f" WHERE sd.chunk_count != (SELECT count(*) FROM {space.chunks} AS c"
        "                          WHERE c.document_id = d.id)"
        "    OR (d.sync_status = 'synced' AND d.chunk_count != sd.chunk_count)",
        (space.id,),
    ).fetchall()
    if miscounted:
        drift.problems.append(f"{len(miscounted)} documents' chunk counts disagree")
        drift.documents.update(r[0] for r in miscounted)
    unbacked = conn.execute(
        "SELECT d.id FROM document_index AS d WHERE d.sync_status = 'synced'"
        " AND NOT EXISTS (SELECT 1 FROM space_documents AS sd WHERE sd.document_id = d.id"
        "                 AND sd.space_id = ? AND sd.content_hash = d.content_hash)",
        (space.id,),
    ).fetchall()
    if unbacked:
        drift.problems.append(f"{len(unbacked)} documents marked synced are not indexed")
        drift.documents.update(r[0] for r in unbacked)
    stray = conn.execute(
        f"SELECT DISTINCT c.document_id, d.sync_status FROM {space.chunks} AS c"
        " JOIN document_index AS d ON d.id = c.document_id WHERE NOT EXISTS"
        " (SELECT 1 FROM space_documents AS sd WHERE sd.document_id = c.document_id"
        "  AND sd.space_id = ?)",
        (space.id,),
    ).fetchall()
    # A document queued for re-indexing (`index --full`, a changed file) keeps its old chunks
    # until the worker replaces them: that is an unfinished run, not damage.
    waiting = [r[0] for r in stray if r[1] in ("pending", "stale")]
    broken = [r[0] for r in stray if r[1] not in ("pending", "stale")]
    if waiting:
        drift.notes.append(
            f"{len(waiting)} documents are waiting to be re-indexed (an unfinished run: "
            "`abathur-memory index` finishes it)"
        )
    if broken:
        drift.problems.append(f"{len(broken)} documents have chunks but no index record")
        drift.documents.update(broken)


def _fts_ok(conn: driver.Connection, fts: str) -> bool | None:
    """Whether a full-text index agrees with its content; None when that cannot be
    checked because the file is read-only (FTS5's integrity-check is an INSERT)."""
    try:
        conn.execute(f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)")
    except driver.DatabaseError as exc:
        if "readonly" in str(exc).lower() or "read-only" in str(exc).lower():
            return _fts_structure_ok(conn, fts)
        return False
    return True


def _fts_structure_ok(conn: driver.Connection, fts: str) -> bool | None:
    """Read-only fallback: integrity_check covers an FTS5 index's own structure (and its
    content, when it stores it); comparing with an external content table needs a write."""
    rows = [r[0] for r in conn.execute(f"PRAGMA integrity_check('{fts}')")]
    if rows != ["ok"]:
        return False
    external = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (fts,)).fetchone()
    return None if external and "content=" in str(external[0]).replace(" ", "") else True


def _memory_index(conn: driver.Connection, drift: Drift) -> None:
    if _fts_ok(conn, "memory_fts") is False:
        drift.memory_index_broken = True
        drift.problems.append("memory_fts is damaged")
        return
    wrong = conn.execute(
        "SELECT count(*) FROM memory_fts_keys AS k"
        " LEFT JOIN memory_fts AS f ON f.rowid = k.entry_id"
        " LEFT JOIN memory_entries AS m ON m.id = k.entry_id"
        " WHERE f.rowid IS NULL OR m.id IS NULL OR m.is_deleted = 1"
    ).fetchone()[0]
    if wrong:
        drift.memory_index_broken = True
        drift.problems.append(f"{wrong} memory index entries point at missing or deleted memories")
    cursor = memory_index.keyword_cursor(conn)
    if cursor == memory_index.REBUILD:
        return  # the background indexer rebuilds it from scratch on its next round
    # Every live memory whose last change the index has applied must be in it, as its latest
    # version. (Changes after the cursor are the background indexer's next round.)
    missing, outdated = conn.execute(
        "SELECT sum(k.entry_id IS NULL), sum(k.entry_id IS NOT NULL AND k.entry_id != m.id)"
        " FROM memory_entries AS m"
        " LEFT JOIN memory_fts_keys AS k ON k.namespace = m.namespace AND k.key = m.key"
        " WHERE m.is_deleted = 0"
        "   AND m.version = (SELECT max(v.version) FROM memory_entries AS v"
        "                    WHERE v.namespace = m.namespace AND v.key = m.key)"
        "   AND NOT EXISTS (SELECT 1 FROM audit AS a WHERE a.memory_entry_id = m.id"
        "                   AND a.id > ?)",
        (cursor,),
    ).fetchone()
    if missing:
        drift.memory_index_broken = True
        drift.problems.append(f"{missing} live memories are missing from the keyword index")
    if outdated:
        drift.memory_index_broken = True
        drift.problems.append(f"{outdated} memories are indexed with an old version")


def check(conn: driver.Connection, _: object = None) -> list[Check]:
    drift = find_drift(conn)
    ok = not drift.problems
    if ok:
        detail = "documents, chunks, full-text and vectors agree; memory index consistent"
        if drift.notes:
            detail += "; " + "; ".join(drift.notes)
    else:
        detail = (
            "; ".join(drift.problems)
            + " (`abathur-memory doctor --repair` re-indexes what disagrees)"
            + ("; " + "; ".join(drift.notes) if drift.notes else "")
        )
    return [Check("index consistency", ok, detail, warning=ok and bool(drift.notes))]


def repair(conn: driver.Connection) -> Drift:
    """Fix what can be fixed in place; mark the documents to re-index. Write transaction."""
    drift = find_drift(conn)
    space = spaces.active_space(conn)
    if space is not None:
        if drift.fts_broken:
            conn.execute(f"INSERT INTO {space.fts}({space.fts}) VALUES ('rebuild')")
        conn.execute(
            f"DELETE FROM {space.vectors} WHERE chunk_id NOT IN (SELECT id FROM {space.chunks})"
        )
        for document_id in drift.documents:
            conn.execute(f"DELETE FROM {space.chunks} WHERE document_id = ?", (document_id,))
            conn.execute(
                "DELETE FROM space_documents WHERE document_id = ? AND space_id = ?",
                (document_id, space.id),
            )
            conn.execute(
                "UPDATE document_index SET sync_status = 'stale', chunk_count = 0 WHERE id = ?",
                (document_id,),
            )
        spaces.bump_generation(conn, space)
    if drift.memory_index_broken:
        memory_index.rebuild_keywords(conn)
    return drift
