"""Salvage what can be read from a damaged database into a new one (seed 000 §5.3).

Rows are copied table by table in rowid order. When a read fails on a damaged page, the scan
jumps ahead (exponentially) past the damage and carries on, so one bad page costs the rows
on it, not the rest of the table. The new file gets the current schema; rows left pointing at
parents that were lost are detached (nullable links) or dropped (mandatory links), so the
result passes ``integrity_check`` and ``foreign_key_check``.

Derived data is not copied but rebuilt: the memory keyword index is rebuilt by the next
server or indexer from the memories that survived, and every document is marked for
re-indexing (its chunks, full-text rows and vectors are made again by the next `index`).
The result is verified like a backup; a salvage that fails or does not verify leaves no file.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from abathur_memory.errors import Conflict, InvalidInput, NotFound, Unavailable
from abathur_memory.store.operations import SalvageResult, TableSalvage
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite import migrate as runner
from abathur_memory.store.sqlite.backup import verify_database

log = logging.getLogger(__name__)

_MAX_SKIP = 1 << 40
_BATCH = 256


# Made again from what survived, never copied (a half-copied FTS index is itself damage).
DERIVED_TABLES = frozenset(
    {
        "memory_fts",
        "memory_fts_keys",
        "embedding_spaces",
        "space_documents",
        "indexer_heartbeats",
        "consolidation_vectors",
    }
)


def _derived(table: str) -> bool:
    return table in DERIVED_TABLES or table.startswith("memory_fts_")


def salvage(damaged: Path, output: Path) -> SalvageResult:
    """Copy every readable row of ``damaged`` into a new database at ``output``."""
    if not damaged.is_file():
        raise NotFound(f"no database at {damaged}")
    if output.exists():
        raise Conflict(f"{output} already exists; salvage writes a new file")
    if damaged.resolve() == output.resolve():
        raise InvalidInput("the output must be a different file from the damaged database")
    # Work on a copy (with its WAL): opening the original read-write could let SQLite
    # checkpoint or roll back into the very file being salvaged.
    with tempfile.TemporaryDirectory(prefix=".abathur-salvage-", dir=output.parent) as tmp:
        copy = Path(tmp) / "damaged.db"
        shutil.copyfile(damaged, copy)
        if Path(f"{damaged}-wal").is_file():
            shutil.copyfile(f"{damaged}-wal", f"{copy}-wal")
        return _salvage_copy(copy, damaged, output)


def _salvage_copy(copy: Path, damaged: Path, output: Path) -> SalvageResult:
    source = driver.connect_plain(copy)
    try:
        try:
            present = {
                row[0]
                for row in source.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except driver.DatabaseError as exc:
            raise InvalidInput(
                f"cannot read the schema of {damaged} ({exc}); nothing to salvage"
            ) from None
        result = SalvageResult(output)
        try:
            target = driver.connect(output)
            try:
                runner.migrate(target)
                target.execute("PRAGMA foreign_keys = OFF")
                target.execute("BEGIN IMMEDIATE")
                target.execute("DELETE FROM memory_entries")  # fresh seed rows; originals follow
                # Tables in creation order, so parents come before children.
                columns = runner.target_columns()
                for table in columns:
                    if table in present and table != "schema_migrations" and not _derived(table):
                        result.tables[table] = _copy_table(source, target, table, columns[table])
                _reseed(target)
                _repair_links(target, result)
                result.reindex_documents = _mark_derived_for_rebuild(target)
                target.execute("COMMIT")
                target.execute("PRAGMA foreign_keys = ON")
            finally:
                target.close()
            problem = _verify(output)
            if problem:
                raise Unavailable(f"the salvaged file did not verify ({problem}); nothing kept")
        except BaseException:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{output}{suffix}").unlink(missing_ok=True)
            raise
    finally:
        source.close()
    return result


def _mark_derived_for_rebuild(target: driver.Connection) -> int:
    """Documents need their chunks and vectors again; the memory index is rebuilt."""
    memory_index_rebuild = "INSERT INTO meta (key, value) VALUES ('memory_index_audit_id', '-1')"
    target.execute(memory_index_rebuild + " ON CONFLICT(key) DO UPDATE SET value = '-1'")
    target.execute(
        "DELETE FROM meta WHERE key IN ('embedding_model', 'embedding_dim', 'embedding_identity')"
    )
    return target.execute(
        "UPDATE document_index SET sync_status = 'stale', chunk_count = 0, lease_owner = NULL,"
        " lease_until = NULL, attempts = 0, next_attempt_at = NULL"
        " WHERE root_id IS NOT NULL AND sync_status != 'failed'"
    ).rowcount


def _verify(output: Path) -> str | None:
    """What is wrong with the salvaged file, if anything: it must be a healthy database at
    the current schema."""
    problem = verify_database(output, require_abathur=True)
    if problem:
        return problem
    conn = driver.connect_plain(output)
    try:
        if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
            return "rows still point at missing parents"
        if runner.current_version(conn) != runner.latest_version():
            return "its schema is not the current one"
    finally:
        conn.close()
    return None


def _copy_table(
    source: driver.Connection, target: driver.Connection, table: str, wanted: frozenset[str]
) -> TableSalvage:
    stats = TableSalvage()
    try:
        have = [row[1] for row in source.execute(f'PRAGMA table_info("{table}")')]
    except driver.DatabaseError:
        stats.read_errors += 1
        return stats
    cols = [c for c in have if c in wanted]
    col_list = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join("?" for _ in cols)
    insert = f'INSERT OR IGNORE INTO "{table}" ({col_list}) VALUES ({marks})'
    # `rowid >= ?` here and in the probe, so "reading from N fails" means the same in both.
    select = f'SELECT rowid, {col_list} FROM "{table}" WHERE rowid >= ? ORDER BY rowid LIMIT ?'
    start, batch = 1, _BATCH  # our rowids start at 1
    while True:
        try:
            rows = source.execute(select, (start, batch)).fetchall()
        except driver.DatabaseError:
            if batch > 1:
                batch = 1  # read row by row up to the damage, so no readable row is lost
                continue
            stats.read_errors += 1
            resume = _first_readable_from(source, table, start)
            if resume is None:
                return stats
            start, batch = resume, _BATCH
            continue
        if not rows:
            return stats
        for row in rows:
            try:
                target.execute(insert, tuple(row)[1:])
                stats.copied += 1
            except driver.IntegrityError:
                stats.read_errors += 1  # a value damaged into something the schema rejects
        start = rows[-1][0] + 1


def _first_readable_from(source: driver.Connection, table: str, start: int) -> int | None:
    """The smallest rowid at or after ``start`` from which reading works again.

    Reading from ``start`` failed. Probes ``start + 1, + 2, + 4, ...`` until a seek succeeds,
    then binary-searches back, so only the rows on the damaged page itself are lost.
    """

    def readable(bound: int) -> bool:
        try:
            source.execute(
                f'SELECT rowid FROM "{table}" WHERE rowid >= ? ORDER BY rowid LIMIT 1', (bound,)
            ).fetchall()
            return True
        except driver.DatabaseError:
            return False

    step = 1
    while not readable(start + step):
        if step > _MAX_SKIP:
            return None
        step *= 2
    low, high = start + step // 2, start + step  # reading from low fails, from high works
    while high - low > 1:
        middle = (low + high) // 2
        if readable(middle):
            high = middle
        else:
            low = middle
    return high


def _reseed(target: driver.Connection) -> None:
    """Put back seed memories the damaged file had lost."""
    seed = next(m for m in runner.load_migrations() if m.name == "seed_data")
    for statement in seed.statements():
        target.execute(statement)


def _repair_links(target: driver.Connection, result: SalvageResult) -> None:
    """Detach or drop rows whose parent row was lost."""
    for table, rowid, _parent, fk_id in target.execute("PRAGMA foreign_key_check").fetchall():
        link = next(
            fk for fk in target.execute(f'PRAGMA foreign_key_list("{table}")') if fk[0] == fk_id
        )
        column = link[3]
        notnull = {r[1]: r[3] for r in target.execute(f'PRAGMA table_info("{table}")')}[column]
        stats = result.tables.setdefault(table, TableSalvage())
        if notnull:
            target.execute(f'DELETE FROM "{table}" WHERE rowid = ?', (rowid,))
            stats.dropped += 1
        else:
            target.execute(f'UPDATE "{table}" SET "{column}" = NULL WHERE rowid = ?', (rowid,))
            stats.detached += 1
