"""The doctor's report: seed 002's validation suite as a list of checks.

Each check is ``{name, ok, detail}``. Checks only read, except the JSON-constraint probe,
which inserts invalid rows inside a transaction that is always rolled back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from abathur_memory.schema import hot_queries, runner
from abathur_memory.schema.legacy import SEED_TABLES
from abathur_memory.storage import driver

WAL_WARN_BYTES = 100 * 1024 * 1024  # seed 001 §7.2: the WAL should stay under 100 MB
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


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def run_checks(conn: driver.Connection, db_path: Path) -> list[Check]:
    """Every check, in report order. A check that crashes is reported as failed."""
    checks: list[Check] = []
    for name, fn in _CHECKS:
        try:
            result = fn(conn, db_path)
        except driver.Error as exc:
            result = [Check(name, False, f"could not run: {exc}")]
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
            fts5 and jsonb and bool(versions["sqlite_vec"]),
            f"sqlite-vec {versions['sqlite_vec']}, FTS5 {'yes' if fts5 else 'MISSING'}, "
            f"JSONB {'yes' if jsonb else 'MISSING'}",
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


def _check_pragmas(conn: driver.Connection, _: Path) -> list[Check]:
    expected = {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": driver.SEED_PRAGMAS["busy_timeout"],
        "wal_autocheckpoint": driver.SEED_PRAGMAS["wal_autocheckpoint"],
    }
    actual = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in expected}
    wrong = [f"{k}={actual[k]} (want {v})" for k, v in expected.items() if actual[k] != v]
    detail = ", ".join(f"{k}={v}" for k, v in actual.items())
    return [Check("pragmas", not wrong, detail if not wrong else "; ".join(wrong))]


def _check_integrity(conn: driver.Connection, _: Path) -> list[Check]:
    rows = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
    ok = rows == ["ok"]
    return [Check("integrity_check", ok, "ok" if ok else "; ".join(rows[:5]))]


def _check_foreign_keys(conn: driver.Connection, _: Path) -> list[Check]:
    rows = conn.execute("PRAGMA foreign_key_check").fetchall()
    if not rows:
        return [Check("foreign_key_check", True, "no violations")]
    tables = sorted({row[0] for row in rows})
    return [Check("foreign_key_check", False, f"{len(rows)} violations in {', '.join(tables)}")]


def _check_json_constraints(conn: driver.Connection, _: Path) -> list[Check]:
    accepted = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column, row in _JSON_PROBES:
            values = {**row, column: "{not json"}
            columns = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            conn.execute("SAVEPOINT probe")
            try:
                conn.execute(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values())
                )
                accepted.append(f"{table}.{column}")
            except driver.IntegrityError:
                pass
            finally:
                conn.execute("ROLLBACK TO probe")
                conn.execute("RELEASE probe")
    finally:
        conn.execute("ROLLBACK")
    probed = len(_JSON_PROBES)
    if accepted:
        return [Check("json constraints", False, f"invalid JSON accepted by {', '.join(accepted)}")]
    return [
        Check(
            "json constraints", True, f"invalid JSON rejected by all {probed} JSON columns probed"
        )
    ]


def _check_query_plans(conn: driver.Connection, _: Path) -> list[Check]:
    checks = []
    for query in hot_queries.HOT_QUERIES:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query.sql, query.params)]
        used = [ix for ix in query.indexes if any(ix in step for step in plan)]
        scans = [step for step in plan if step.startswith("SCAN ")]
        ok = bool(used) and not scans
        checks.append(Check(f"plan: {query.name}", ok, " | ".join(plan)))
    return checks


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
        detail += " — over 100 MB: a long-lived reader may be blocking checkpoints"
    return [Check("size", ok, detail)]


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
