"""The doctor on PostgreSQL: its checks and repairs (maintain.py: regular maintenance).

The checks are SQLite's where they apply (schema version, indexes, the consistency of
documents, chunks, vectors and the memory index) and PostgreSQL's own where they differ
(the pgvector extension, invalid indexes, the server's timeouts). File checks (integrity,
PRAGMAs, query plans on a file, the WAL) have no counterpart: the server owns its files.
Backups are the server's too (pg_dump, or base backups with WAL archiving).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from abathur_memory.config import Settings
from abathur_memory.core.spaces import Space
from abathur_memory.store.operations import Check, copy_state_check
from abathur_memory.store.postgres import migrate as runner
from abathur_memory.store.postgres import placement, space_tables
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.spaces import active_space, building_space
from abathur_memory.store.postgres.store import PostgresStore

MIN_PGVECTOR = (0, 8, 0)  # iterative index scans for filtered vector search
_INDEX_NAME = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I)


@dataclass
class PostgresReport:
    database: str
    checks: list[Check]
    read_only: bool = False
    repaired: list[str] = field(default_factory=list)
    reindex: set[int] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


async def examine(url: str, settings: Settings, *, repair: bool = False) -> PostgresReport:
    """Check the database at ``url`` (never creating it); ``repair`` first fixes what can be
    fixed in place: derived data only."""
    store = await PostgresStore.open(
        url, settings, create=False, allow_incomplete=True, check_path=False
    )
    try:
        db = store.database
        report = PostgresReport(db.label, [])
        where = db.placement
        if where is not None and where.problem() is not None:
            report.checks.append(Check("search path", False, str(where.problem())))
            return report  # every other check would read through that path: none is run
        if repair:
            await _repair(store, report)
        checks = (
            _server,
            _extension,
            _placement,
            _schema,
            _indexes,
            _spaces,
            _vector_memory,
            _consistency,
            _copy,
        )
        for check in checks:
            try:
                report.checks.extend(await db.run(check, what="checking the database"))
            except Exception as exc:  # every check reports; none ends the examination
                report.checks.append(Check(check.__name__.strip("_"), False, f"failed: {exc}"))
        return report
    finally:
        await store.close()


async def _rows(conn: Conn, sql: str, params: Any = None) -> list[Any]:
    return await (await conn.execute(sql, params)).fetchall()


async def _value(conn: Conn, sql: str, params: Any = None) -> Any:
    row = await (await conn.execute(sql, params)).fetchone()
    return None if row is None else row[0]


async def _server(conn: Conn) -> list[Check]:
    version = await _value(conn, "SHOW server_version")
    timeouts = await _rows(
        conn,
        "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
        " pg_is_in_recovery()",
    )
    statement, lock, standby = timeouts[0]
    detail = f"PostgreSQL {version}; statement_timeout {statement}, lock_timeout {lock}"
    if standby:
        return [
            Check(
                "server",
                False,
                detail + "; this is a standby (read-only): point --db at the primary",
            )
        ]
    return [Check("server", True, detail)]


async def _vector_memory(conn: Conn) -> list[Check]:
    row = await (
        await conn.execute(
            "SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0),"
            " pg_size_bytes(current_setting('shared_buffers'))"
            " FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid"
            " JOIN pg_am AS a ON a.oid = c.relam"
            " WHERE a.amname = 'hnsw' AND c.relnamespace = current_schema()::regnamespace"
        )
    ).fetchone()
    assert row is not None
    return [vector_memory(int(row[0]), int(row[1]))]


def vector_memory(index_bytes: int, buffer_bytes: int) -> Check:
    """A warning when the HNSW indexes outgrow shared_buffers. A vector search walks index
    pages through shared_buffers; pages that are not there are read one by one, whatever the
    OS has cached: at 1,000,000 chunks under the default 128 MB, 6,060 of a search's 7,446
    buffers were reads and the vector query took 38 ms (bench/two_backends.py; postgres.md)."""
    detail = (
        f"HNSW indexes {index_bytes / 2**20:,.0f} MB, shared_buffers {buffer_bytes / 2**20:,.0f} MB"
    )
    if index_bytes <= buffer_bytes:
        return Check("vector index memory", True, detail)
    return Check(
        "vector index memory",
        True,
        detail + ": vector searches read index pages outside shared_buffers; raise"
        " shared_buffers above the indexes' size (postgresql.conf, then restart the server)",
        warning=True,
    )


async def _extension(conn: Conn) -> list[Check]:
    version = await _value(conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    if version is None:
        return [
            Check(
                "pgvector",
                False,
                "the vector extension is not installed in this database "
                "(`CREATE EXTENSION vector;` as a superuser)",
            )
        ]
    parts = tuple(int(p) for p in re.findall(r"\d+", str(version))[:3])
    if parts < MIN_PGVECTOR:
        return [
            Check(
                "pgvector",
                True,
                f"vector {version}: filtered vector search needs 0.8 "
                "for iterative index scans (upgrade it)",
                warning=True,
            )
        ]
    return [Check("pgvector", True, f"vector {version}")]


async def _placement(conn: Conn) -> list[Check]:
    """Where the tables are, where pgvector is (usable from here), and that no later schema
    of the search_path holds tables of ours (placement.py)."""
    where = placement.placement_of(
        (await _rows(conn, placement.PROBE, (list(placement.our_tables()),)))[0]
    )
    problem = where.problem()
    if problem is not None:
        return [Check("search path", False, problem)]
    if where.vector_schema is not None and not await _value(
        conn, "SELECT has_schema_privilege(%s, 'USAGE')", (where.vector_schema,)
    ):
        detail = f"{where.detail()}; this user may not use schema {where.vector_schema}"
        return [Check("search path", False, detail + " (GRANT USAGE ON SCHEMA ... TO ...)")]
    return [Check("search path", True, where.detail())]


async def _schema(conn: Conn) -> list[Check]:
    shipped = {m.version: m for m in runner.load_migrations()}
    rows = await _rows(conn, "SELECT version, checksum FROM schema_migrations ORDER BY version")
    applied = {version: checksum for version, checksum in rows}
    missing = sorted(set(shipped) - set(applied))
    newer = sorted(set(applied) - set(shipped))
    changed = sorted(v for v, c in applied.items() if v in shipped and shipped[v].checksum != c)
    if newer:
        detail = (
            f"this database was written by a newer abathur-memory (schema {max(newer)}; "
            f"this one knows {max(shipped)}): upgrade abathur-memory"
        )
        return [Check("schema version", False, detail)]
    if missing:
        return [
            Check(
                "schema version",
                False,
                f"migrations {missing} are not applied "
                "(`abathur-memory init` or `doctor --repair` applies them)",
            )
        ]
    if changed:
        return [
            Check(
                "schema version",
                False,
                f"migrations {changed} differ from the files shipped with this release",
            )
        ]
    return [Check("schema version", True, f"version {max(shipped)}, {len(shipped)} migrations")]


def _expected_indexes(spaces: list[Space]) -> set[str]:
    names = {name for m in runner.load_migrations() for name in _INDEX_NAME.findall(m.sql)}
    for space in spaces:
        for step in space_tables.STEPS:
            for statement in step(space.id, space.dim, None):
                if isinstance(statement, str):
                    names.update(_INDEX_NAME.findall(statement))
    return names


async def _live_spaces(conn: Conn) -> list[Space]:
    return [s for s in (await active_space(conn), await building_space(conn)) if s is not None]


async def _indexes(conn: Conn) -> list[Check]:
    present = {
        row[0]: row[1]
        for row in await _rows(
            conn,
            "SELECT c.relname, i.indisvalid FROM pg_index AS i"
            " JOIN pg_class AS c ON c.oid = i.indexrelid"
            " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema()",
        )
    }
    expected = _expected_indexes(await _live_spaces(conn))
    missing = sorted(expected - set(present))
    invalid = sorted(name for name, valid in present.items() if not valid)
    problems = []
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    if invalid:
        problems.append(f"invalid (a failed CREATE INDEX CONCURRENTLY?): {', '.join(invalid)}")
    if problems:
        return [Check("indexes", False, "; ".join(problems) + " (`doctor --repair` rebuilds them)")]
    return [Check("indexes", True, f"all {len(expected)} named indexes present and valid")]


async def _spaces(conn: Conn) -> list[Check]:
    rows = await _rows(conn, "SELECT id, status, ddl_version FROM embedding_spaces ORDER BY id")
    tables = {
        row[0]
        for row in await _rows(
            conn, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    }
    problems = []
    for space_id, status, version in rows:
        gone = [t for t in space_tables.table_names(space_id) if t not in tables]
        if gone:
            problems.append(f"space {space_id} ({status}) lacks {', '.join(gone)}")
        elif version < space_tables.LATEST:
            problems.append(f"space {space_id} is at table version {version}")
    if problems:
        return [Check("embedding spaces", False, "; ".join(problems))]
    return [Check("embedding spaces", True, f"{len(rows)} spaces, tables current")]


@dataclass
class Drift:
    documents: set[int] = field(default_factory=set)
    memory_index_broken: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def find_drift(conn: Conn) -> Drift:
    drift = Drift()
    space = await active_space(conn)
    if space is not None:
        miscounted = await _rows(
            conn,
            "SELECT d.id FROM document_index AS d"
            " JOIN space_documents AS sd ON sd.document_id = d.id AND sd.space_id = %s"
            f" WHERE sd.chunk_count != (SELECT count(*) FROM {space.chunks} AS c"
            "                          WHERE c.document_id = d.id)"
            "    OR (d.sync_status = 'synced' AND d.chunk_count != sd.chunk_count)",
            (space.id,),
        )
        if miscounted:
            drift.problems.append(f"{len(miscounted)} documents' chunk counts disagree")
            drift.documents.update(r[0] for r in miscounted)
        unbacked = await _rows(
            conn,
            "SELECT d.id FROM document_index AS d WHERE d.sync_status = 'synced'"
            " AND NOT EXISTS (SELECT 1 FROM space_documents AS sd WHERE sd.document_id = d.id"
            "                 AND sd.space_id = %s AND sd.content_hash = d.content_hash)",
            (space.id,),
        )
        if unbacked:
            drift.problems.append(f"{len(unbacked)} documents marked synced are not indexed")
            drift.documents.update(r[0] for r in unbacked)
        stray = await _rows(
            conn,
            f"SELECT DISTINCT c.document_id, d.sync_status FROM {space.chunks} AS c"
            " JOIN document_index AS d ON d.id = c.document_id WHERE NOT EXISTS"
            " (SELECT 1 FROM space_documents AS sd WHERE sd.document_id = c.document_id"
            "  AND sd.space_id = %s)",
            (space.id,),
        )
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
    wrong = await _value(
        conn,
        "SELECT count(*) FROM memory_search_index AS k"
        " LEFT JOIN memory_entries AS m ON m.id = k.entry_id"
        " WHERE m.id IS NULL OR m.is_deleted",
    )
    if wrong:
        drift.memory_index_broken = True
        drift.problems.append(f"{wrong} memory index entries point at missing or deleted memories")
    snapshot = await _value(conn, "SELECT value FROM meta WHERE key = 'memory_index_snapshot'")
    if snapshot not in (None, "rebuild"):
        # Live memories whose last change the index has applied must be in it, at their
        # latest version (changes after its snapshot are the indexer's next round).
        missing, outdated = (
            await _rows(
                conn,
                "SELECT count(*) FILTER (WHERE k.entry_id IS NULL),"
                " count(*) FILTER (WHERE k.entry_id IS NOT NULL AND k.entry_id != m.id)"
                " FROM (SELECT DISTINCT ON (namespace, key) id, namespace, key, is_deleted"
                "       FROM memory_entries ORDER BY namespace, key, version DESC) AS m"
                " LEFT JOIN memory_search_index AS k ON k.namespace = m.namespace"
                "   AND k.key = m.key"
                " WHERE NOT m.is_deleted AND NOT EXISTS (SELECT 1 FROM audit AS a"
                "   WHERE a.memory_entry_id = m.id AND a.memory_operation_type IS NOT NULL"
                "   AND NOT pg_visible_in_snapshot(a.tx, %s::pg_snapshot))",
                (snapshot,),
            )
        )[0]
        if missing:
            drift.memory_index_broken = True
            drift.problems.append(f"{missing} live memories are missing from the keyword index")
        if outdated:
            drift.memory_index_broken = True
            drift.problems.append(f"{outdated} memories are indexed with an old version")
    return drift


async def _consistency(conn: Conn) -> list[Check]:
    drift = await find_drift(conn)
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


async def _copy(conn: Conn) -> list[Check]:
    if not await _value(conn, placement.OWN_TABLE, ("meta",)):
        return [copy_state_check(None)]
    state = await _value(conn, "SELECT value FROM meta WHERE key = 'migration_state'")
    return [copy_state_check(state)]


async def _repair(store: PostgresStore, report: PostgresReport) -> None:
    """Derived data only: memories, sessions and tasks are never touched."""
    db = store.database
    applied = await store.migrate()
    if applied:
        report.repaired.append(f"applied the missing schema migrations {applied}")

    async def fix(conn: Conn) -> None:
        async with conn.transaction():
            drift = await find_drift(conn)
            space = await active_space(conn)
            if space is not None and drift.documents:
                ids = sorted(drift.documents)
                await conn.execute(
                    f"DELETE FROM {space.chunks} WHERE document_id = ANY(%s)", (ids,)
                )
                await conn.execute(
                    "DELETE FROM space_documents WHERE space_id = %s AND document_id = ANY(%s)",
                    (space.id, ids),
                )
                await conn.execute(
                    "UPDATE document_index SET sync_status = 'stale', chunk_count = 0"
                    " WHERE id = ANY(%s)",
                    (ids,),
                )
                report.reindex.update(ids)
                report.repaired.append(f"marked {len(ids)} documents for re-indexing")
            if drift.memory_index_broken:
                await conn.execute(
                    "UPDATE meta SET value = 'rebuild' WHERE key = 'memory_index_snapshot'"
                )
                report.repaired.append("rebuilding the memory keyword index")

    await db.run(fix, what="repairing")
    if any("memory keyword index" in line for line in report.repaired):
        await store.memory_index.sync_keywords()
    await _rebuild_indexes(db, report)


async def _rebuild_indexes(db: Database, report: PostgresReport) -> None:
    async def invalid(conn: Conn) -> list[str]:
        return [
            row[0]
            for row in await _rows(
                conn,
                "SELECT c.relname FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid"
                " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema() AND NOT i.indisvalid",
            )
        ]

    for name in await db.run(invalid):

        async def reindex(conn: Conn, name: str = name) -> None:
            await conn.execute(f'REINDEX INDEX "{name}"'.encode())

        await db.run(reindex, what=f"rebuilding the index {name}")
        report.repaired.append(f"rebuilt the index {name}")
