"""The doctor's report: seed 002's validation suite as a list of checks.

Each check is ``{name, ok, warning, detail}``: ``ok`` false fails the report (exit 1), a
``warning`` is worth acting on but is not damage (say, statistics that `maintain` refreshes).
Every check only reads, so the report also runs on a read-only file; the probes that need to
write (JSON constraints, query plans) run on an in-memory copy of the file's own schema. A
check that cannot run reports why instead of stopping the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from abathur_memory.store.operations import Check
from abathur_memory.store.sqlite import driver
from abathur_memory.store.sqlite import migrate as runner
from abathur_memory.store.sqlite import queries as hot_queries
from abathur_memory.store.sqlite.legacy import SEED_TABLES

WAL_WARN_BYTES = 100 * 1024 * 1024  # seed 001 §7.2: the WAL should stay under 100 MB
RECOVER_HINT = (
    "the file is damaged: `abathur-memory doctor --recover NEW.db` salvages every readable "
    "row into a new file"
)
# `maintain` vacuums when a quarter of the file is free pages (and at least 1 MiB of them).
VACUUM_FREE_RATIO = 0.25
VACUUM_MIN_PAGES = 256
MIN_EXPLICIT_INDEXES = 32

# Index names seed 002 gives, and which of them are partial.
SEED_INDEXES = {
    "idx_sessions_pk": False,
    "idx_sessions_status_updated": True,
    "idx_sessions_user_created": False,
    "idx_sessions_project": True,
    "idx_memory_entries_pk": False,
    "idx_memory_namespace_key_version": False,
    "idx_memory_type_updated": True,
    "idx_memory_namespace_prefix": True,
    "idx_memory_episodic_ttl": True,
    "idx_memory_created_by": False,
    "idx_document_index_pk": False,
    "idx_document_file_path": False,
    "idx_document_type_created": True,
    "idx_document_sync_status": True,
    "idx_document_content_hash": False,
    "idx_tasks_status_priority": False,
    "idx_tasks_submitted_at": False,
    "idx_tasks_parent": True,
    "idx_tasks_running_timeout": True,
    "idx_tasks_session": True,
    "idx_agents_task": False,
    "idx_agents_state": False,
    "idx_agents_session": True,
    "idx_audit_task": False,
    "idx_audit_agent": False,
    "idx_audit_timestamp": False,
    "idx_audit_memory_operations": True,
    "idx_audit_memory_namespace": True,
    "idx_audit_memory_entry": True,
    "idx_state_task_key": False,
    "idx_metrics_name_timestamp": False,
    "idx_checkpoints_task": False,
}

# (table, column, a row that is valid except for that column) for the JSON CHECK probe.
_JSON_PROBES: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("sessions", "events", {"id": "doctor-probe", "app_name": "a", "user_id": "u"}),
    ("sessions", "state", {"id": "doctor-probe", "app_name": "a", "user_id": "u"}),
    ("sessions", "metadata", {"id": "doctor-probe", "app_name": "a", "user_id": "u"}),
    (
        "memory_entries",
        "value",
        {"namespace": "temp:doctor", "key": "k", "value": "1", "memory_type": "semantic"},
    ),
    (
        "memory_entries",
        "metadata",
        {"namespace": "temp:doctor", "key": "k", "value": "1", "memory_type": "semantic"},
    ),
    (
        "document_index",
        "metadata",
        {"file_path": "doctor-probe.md", "title": "t", "content_hash": "0"},
    ),
)

SEED_MEMORIES = (
    ("app:abathur:agent_instructions", "default_workflow"),
    ("app:abathur:defaults", "user_preference_template"),
    ("app:abathur:config", "memory_lifecycle_policies"),
)


CheckFn = Callable[[driver.Connection, Path], list[Check]]


def run_checks(
    conn: driver.Connection, db_path: Path, extra: tuple[tuple[str, CheckFn], ...] = ()
) -> list[Check]:
    """Every check, in report order. A check that cannot run (a damaged page, say) is
    reported as failed with the reason, and the others still run."""
    checks: list[Check] = []
    for name, fn in (*_CHECKS, *extra):
        try:
            result = fn(conn, db_path)
        except Exception as exc:  # the doctor exists for damaged files: report, never crash
            detail = f"could not run: {exc}"
            if "malformed" in str(exc) or "not a database" in str(exc):
                detail += f" ({RECOVER_HINT})"
            result = [Check(name, False, detail)]
        checks.extend(result)
    return checks


def _check_versions(conn: driver.Connection, _: Path) -> list[Check]:
    versions = driver.extension_versions(conn)
    sqlite_ok = driver.sqlite_version_info() >= driver.MIN_SQLITE_VERSION
    fts5 = bool(conn.execute("SELECT sqlite_compileoption_used('ENABLE_FTS5')").fetchone()[0])
    jsonb = conn.execute("SELECT json(jsonb('{\"a\":1}'))").fetchone()[0] == '{"a":1}'
    return [
        Check("sqlite version", sqlite_ok, f"SQLite {versions['sqlite']} ({versions['driver']})"),
        Check(
            "extensions",
            fts5 and jsonb,
            f"FTS5 {'yes' if fts5 else 'MISSING'}, JSONB {'yes' if jsonb else 'MISSING'}",
        ),
    ]


def _check_schema_version(conn: driver.Connection, _: Path) -> list[Check]:
    current, latest = runner.current_version(conn), runner.latest_version()
    applied = runner.applied_versions(conn)
    missing = [m.version for m in runner.load_migrations() if m.version not in applied]
    changed = [
        m.version
        for m in runner.load_migrations()
        if m.version in applied and applied[m.version] != m.checksum
    ]
    meta = (
        dict(conn.execute("SELECT key, value FROM meta").fetchall()) if _has(conn, "meta") else {}
    )
    newer = runner.newer_versions(conn)
    if newer:  # what every other command refuses (migrate._refuse_newer)
        detail = (
            f"this database was written by a newer abathur-memory (schema {max(newer)}; "
            f"this one knows {latest}): upgrade abathur-memory"
        )
        return [Check("schema version", False, detail)]
    detail = f"schema version {current} of {latest}"
    if missing:
        detail += f"; migrations {missing} not applied (run `abathur-memory init` to upgrade)"
    if changed:
        detail += f"; migrations {changed} differ from the shipped files"
    model = meta.get("embedding_model")
    if model:
        detail += f"; embedding model {model} ({meta.get('embedding_dim', '?')} dims)"
    return [Check("schema version", not missing and not changed, detail)]


def _check_tables(conn: driver.Connection, _: Path) -> list[Check]:
    target = runner.target_columns()
    missing, short = [], []
    for table in (*SEED_TABLES, "meta", "schema_migrations"):
        if not _has(conn, table):
            missing.append(table)
            continue
        if table in target:
            want = target[table]
            have = {row["name"] for row in conn.execute(f'PRAGMA table_info("{table}")')}
            if want - have:
                short.append(f"{table} lacks {', '.join(sorted(want - have))}")
    problems = ([f"missing tables: {', '.join(missing)}"] if missing else []) + short
    detail = "; ".join(problems) or "9 seed tables + meta + schema_migrations, all columns present"
    return [Check("tables", not problems, detail)]


def _check_indexes(conn: driver.Connection, _: Path) -> list[Check]:
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    found = {row["name"]: row["sql"] or "" for row in rows}
    automatic = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'sqlite_%'"
    ).fetchone()[0]
    missing = [name for name in SEED_INDEXES if name not in found]
    not_partial = [
        name
        for name, partial in SEED_INDEXES.items()
        if partial and name in found and " WHERE " not in found[name].upper()
    ]
    ok = not missing and not not_partial and len(found) >= MIN_EXPLICIT_INDEXES
    partial = sum(SEED_INDEXES.values())
    detail = f"{len(found)} explicit indexes ({partial} partial) + {automatic} automatic"
    if missing:
        detail += f"; missing: {', '.join(missing)}"
    if not_partial:
        detail += f"; should be partial: {', '.join(not_partial)}"
    return [Check("indexes", ok, detail)]


def _check_pragmas(conn: driver.Connection, path: Path) -> list[Check]:
    expected = {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": driver.SEED_PRAGMAS["busy_timeout"],
        "wal_autocheckpoint": driver.SEED_PRAGMAS["wal_autocheckpoint"],
    }
    actual = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in expected}
    if actual["journal_mode"] != "wal" and driver.file_is_wal(path):
        # Read-only and opened immutable (no -shm could be made): the file is in WAL mode.
        actual["journal_mode"] = "wal"
    wrong = [f"{k}={actual[k]} (want {v})" for k, v in expected.items() if actual[k] != v]
    detail = ", ".join(f"{k}={v}" for k, v in actual.items())
    return [Check("pragmas", not wrong, detail if not wrong else "; ".join(wrong))]


def _check_integrity(conn: driver.Connection, _: Path) -> list[Check]:
    rows = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
    ok = rows == ["ok"]
    detail = "ok" if ok else "; ".join(rows[:5]) + f" ({RECOVER_HINT})"
    return [Check("integrity_check", ok, detail)]


def _check_foreign_keys(conn: driver.Connection, _: Path) -> list[Check]:
    rows = conn.execute("PRAGMA foreign_key_check").fetchall()
    if not rows:
        return [Check("foreign_key_check", True, "no violations")]
    tables = sorted({row[0] for row in rows})
    return [Check("foreign_key_check", False, f"{len(rows)} violations in {', '.join(tables)}")]


def _check_json_constraints(conn: driver.Connection, _: Path) -> list[Check]:
    """Probe the CHECK constraints of this file's own table definitions, on a scratch copy
    in memory (so a read-only file can be checked, and nothing is written to it)."""
    accepted = []
    tables = {table for table, _, _ in _JSON_PROBES}
    scratch = _scratch_schema(conn, tables)
    try:
        for table, column, row in _JSON_PROBES:
            values = {**row, column: "{not json"}
            columns = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            try:
                scratch.execute(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values())
                )
                accepted.append(f"{table}.{column}")
            except driver.IntegrityError:
                pass
            except driver.OperationalError as exc:  # a column the file's table lacks
                return [Check("json constraints", False, f"could not probe {table}: {exc}")]
    finally:
        scratch.close()
    probed = len(_JSON_PROBES)
    if accepted:
        return [Check("json constraints", False, f"invalid JSON accepted by {', '.join(accepted)}")]
    return [
        Check(
            "json constraints", True, f"invalid JSON rejected by all {probed} JSON columns probed"
        )
    ]


def _scratch_schema(conn: driver.Connection, tables: set[str]) -> driver.Connection:
    """An in-memory database with this file's definitions of ``tables`` and their indexes
    (foreign keys off: the probes insert rows without parents)."""
    scratch = driver.connect_plain(":memory:")
    rows = conn.execute(
        "SELECT type, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL"
        " AND type IN ('table', 'index') ORDER BY type = 'index'"
    ).fetchall()
    for _kind, table, sql in rows:
        if table in tables:
            scratch.execute(sql)
    return scratch


SMALL_TABLE_ROWS = 1000  # below this SQLite may rightly prefer a scan: nothing to report
STALE_FACTOR = 10  # statistics that describe a tenth of a table's rows are stale


def _check_query_plans(conn: driver.Connection, _: Path) -> list[Check]:
    """Does each hot query use its index? Judged on this file's schema without statistics
    (a missing or unusable index fails); the plan on the file itself, which its statistics
    steer, is reported as a warning only when a large table is scanned."""
    tables = {query.table for query in hot_queries.HOT_QUERIES}
    tables |= {other for query in hot_queries.HOT_QUERIES for other in query.others}
    scratch = _scratch_schema(conn, tables)
    checks = []
    try:
        for query in hot_queries.HOT_QUERIES:
            intended = _plan(scratch, query)
            used = [ix for ix in query.indexes if any(ix in step for step in intended)]
            if not used:
                detail = "does not use its index: " + " | ".join(intended)
                checks.append(Check(f"plan: {query.name}", False, detail))
                continue
            actual = _plan(conn, query)
            rows = _row_count(conn, query.table)
            scans = [step for step in actual if step.startswith("SCAN ")]
            if not scans or rows < SMALL_TABLE_ROWS:
                note = f"uses {used[0]}" + (
                    f" (SQLite scans the {rows} rows of {query.table} for now: right at this size)"
                    if scans
                    else ""
                )
                checks.append(Check(f"plan: {query.name}", True, note))
                continue
            stale = _stale_statistics(conn, query.table, rows)
            advice = (
                f"statistics describe {stale} rows of {query.table}, which has {rows}: "
                "`abathur-memory maintain` (or `doctor --repair`) refreshes them"
                if stale is not None
                else f"SQLite prefers a scan of {query.table} ({rows} rows) with the current "
                "statistics"
            )
            checks.append(
                Check(f"plan: {query.name}", True, advice + ": " + " | ".join(actual), True)
            )
    finally:
        scratch.close()
    return checks


def _plan(conn: driver.Connection, query: hot_queries.HotQuery) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query.sql, query.params)]


def _row_count(conn: driver.Connection, table: str) -> int:
    return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def _stale_statistics(conn: driver.Connection, table: str, rows: int) -> int | None:
    """The row count the statistics give for ``table`` when it is far from ``rows``."""
    if not _has(conn, "sqlite_stat1"):
        return 0 if rows >= SMALL_TABLE_ROWS else None
    stats = [
        int(str(stat).split()[0])
        for (stat,) in conn.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = ?", (table,))
        if stat and str(stat).split()[0].isdigit()
    ]
    described = max(stats, default=0)
    if rows >= SMALL_TABLE_ROWS and rows > described * STALE_FACTOR:
        return described
    return None


def stale_statistics(conn: driver.Connection) -> list[str]:
    """Hot tables whose statistics are far behind their size (what `maintain` refreshes)."""
    tables = sorted({query.table for query in hot_queries.HOT_QUERIES})
    return [t for t in tables if _stale_statistics(conn, t, _row_count(conn, t)) is not None]


def _check_seed_data(conn: driver.Connection, _: Path) -> list[Check]:
    missing = [
        f"{ns}/{key}"
        for ns, key in SEED_MEMORIES
        if conn.execute(
            "SELECT 1 FROM memory_entries WHERE namespace = ? AND key = ?", (ns, key)
        ).fetchone()
        is None
    ]
    ok = not missing
    return [Check("seed data", ok, "3 seed memories present" if ok else f"missing {missing}")]


def _check_size(conn: driver.Connection, db_path: Path) -> list[Check]:
    size = _file_size(db_path)
    wal = _file_size(Path(f"{db_path}-wal"))
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    ok = wal <= WAL_WARN_BYTES
    detail = f"database {_human(size)} ({pages} pages, {free} free), WAL {_human(wal)}"
    if not ok:
        detail += (
            " — over 100 MB: a long-lived reader may be blocking checkpoints"
            " (`abathur-memory maintain` checkpoints it)"
        )
    reclaimable = pages and free / pages >= VACUUM_FREE_RATIO and free >= VACUUM_MIN_PAGES
    if ok and reclaimable:
        detail += f"; {free * 100 // pages}% of the pages are free: `abathur-memory maintain`"
        detail += " reclaims them"
    return [Check("size", ok, detail, warning=bool(ok and reclaimable))]


_CHECKS: tuple[tuple[str, Callable[[driver.Connection, Path], list[Check]]], ...] = (
    ("versions", _check_versions),
    ("schema version", _check_schema_version),
    ("tables", _check_tables),
    ("indexes", _check_indexes),
    ("pragmas", _check_pragmas),
    ("integrity_check", _check_integrity),
    ("foreign_key_check", _check_foreign_keys),
    ("json constraints", _check_json_constraints),
    ("query plans", _check_query_plans),
    ("seed data", _check_seed_data),
    ("size", _check_size),
)


def _has(conn: driver.Connection, table: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?", (table,)
        ).fetchone()
        is not None
    )


def _file_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
