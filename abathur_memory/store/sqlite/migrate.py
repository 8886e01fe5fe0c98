"""Numbered SQL migrations: loaded from package data, applied on open, recorded once.

Each ``migrations/NNNN_name.sql`` file runs in the same ``BEGIN IMMEDIATE`` transaction as the
row that records it in ``schema_migrations``, so a migration is either fully applied or not at
all, and two processes opening a new file at the same moment serialise on the write lock: the
second one finds the work done and applies nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from abathur_memory.errors import InvalidInput, Unavailable
from abathur_memory.store.sqlite import driver, legacy, space_tables

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.sql)


@cache
def load_migrations() -> tuple[Migration, ...]:
    """All migrations shipped with the package, in version order."""
    found = []
    for entry in resources.files("abathur_memory.store.sqlite").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return tuple(found)


def latest_version() -> int:
    return load_migrations()[-1].version


def split_statements(sql: str) -> list[str]:
    """Split a script into complete statements (trigger bodies stay whole)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        if not buffer and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buffer += line
        if driver.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise RuntimeError(f"incomplete SQL statement at end of migration: {buffer[:80]!r}")
    return statements


def applied_versions(conn: driver.Connection) -> dict[int, str]:
    """{version: checksum} recorded in the database (empty for a new file)."""
    if not _table_exists(conn, "schema_migrations"):
        return {}
    return {
        row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM schema_migrations")
    }


def current_version(conn: driver.Connection) -> int:
    return max(applied_versions(conn), default=0)


def migrate(conn: driver.Connection) -> list[int]:
    """Bring the database to the latest schema; return the versions applied now."""
    done = set(applied_versions(conn))
    _refuse_newer(done)
    if done >= {m.version for m in load_migrations()} and not space_tables.behind(conn):
        return []  # fast path: no write lock taken
    # A table rebuild must not fire ON DELETE actions: foreign keys are switched off around it
    # (the pragma is a no-op inside a transaction, so this happens before BEGIN).
    may_adopt = not applied_versions(conn) and bool(legacy.legacy_tables(conn))
    if may_adopt:
        conn.execute("PRAGMA foreign_keys = OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            applied = _migrate_locked(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite ends it itself on some errors (a full disk)
                conn.execute("ROLLBACK")
            raise
    finally:
        if may_adopt:
            conn.execute("PRAGMA foreign_keys = ON")
    if applied:
        log.info("applied schema migrations %s", applied)
    return applied


def _migrate_locked(conn: driver.Connection) -> list[int]:
    conn.execute(SCHEMA_MIGRATIONS_DDL)
    done = applied_versions(conn)
    _refuse_newer(set(done))
    adopted = False
    if not done:
        _refuse_foreign_database(conn)
        if legacy.legacy_tables(conn):
            # Older layouts predate migration 1: bring them to its shape, then carry on.
            legacy.adopt(conn, target_tables_sql(upto=1))
            adopted = True
    applied = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        for statement in migration.statements():
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
            (migration.version, migration.name, migration.checksum),
        )
        applied.append(migration.version)
    # Tables per embedding space follow the numbered migrations, for every live space.
    upgraded = space_tables.ensure_all(conn)
    if upgraded:
        log.info("brought the tables of embedding spaces %s up to date", upgraded)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
        "updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now')",
        (str(latest_version()),),
    )
    if adopted:
        violations = conn.execute("PRAGMA foreign_key_check").fetchall()
        if violations:
            tables = sorted({row[0] for row in violations})
            raise InvalidInput(
                f"cannot upgrade: the existing data has {len(violations)} foreign key "
                f"violation(s) in {', '.join(tables)}; nothing was changed"
            )
    return applied


def newer_versions(conn: driver.Connection) -> list[int]:
    """Recorded schema versions this abathur-memory does not know (a newer one wrote them)."""
    return sorted(set(applied_versions(conn)) - {m.version for m in load_migrations()})


def refuse_newer(conn: driver.Connection) -> None:
    _refuse_newer(set(applied_versions(conn)))


def _refuse_newer(done: set[int]) -> None:
    newer = done - {m.version for m in load_migrations()}
    if newer:
        raise Unavailable(
            f"this database has schema version {max(newer)}, newer than this abathur-memory "
            f"understands ({latest_version()}); upgrade abathur-memory to open it"
        )


def check_existing_file(path: Path) -> None:
    """Before anything writes to an existing file (even the switch to WAL mode): it must be
    readable and ours (or empty, or an older abathur layout). Opened read-only."""
    try:
        conn = driver.connect(path, file_read_only=True)  # a read-only folder works too
    except driver.Error as exc:
        raise _unreadable(path, exc) from None
    try:
        _refuse_foreign_database(conn)
    except driver.DatabaseError as exc:
        raise _unreadable(path, exc) from None
    finally:
        conn.close()


def _unreadable(path: Path, exc: driver.Error) -> Unavailable:
    """Damaged only when SQLite says so (SQLITE_CORRUPT, SQLITE_NOTADB); otherwise the file
    could not be opened, which says nothing about its content."""
    code = getattr(exc, "sqlite_errorcode", None)
    damaged = (code is not None and code & 0xFF in (11, 26)) or any(
        word in str(exc).lower() for word in ("malformed", "not a database")
    )
    if damaged:
        return Unavailable(
            f"the database {path} is damaged ({exc}); `abathur-memory doctor` says more"
        )
    return Unavailable(f"cannot open {path}: {exc}")


def _refuse_foreign_database(conn: driver.Connection) -> None:
    """Do not write our tables into somebody else's database."""
    tables = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'schema_migrations'"
        )
    }
    if tables and not tables & set(legacy.SEED_TABLES):
        listed = ", ".join(sorted(tables)[:5])
        raise InvalidInput(
            f"this SQLite file was not created by abathur-memory (it has tables {listed}); "
            "refusing to modify it: choose another --db path"
        )


SchemaObject = tuple[str, str, str | None, frozenset[str]]


@cache
def _target_schema(upto: int | None = None) -> tuple[SchemaObject, ...]:
    """(type, name, sql, columns) of every object the schema creates, in creation order.

    Read from a scratch in-memory database with the migrations applied (up to ``upto``).
    """
    scratch = driver.connect(":memory:")
    try:
        for migration in load_migrations():
            if upto is not None and migration.version > upto:
                break
            for statement in migration.statements():
                scratch.execute(statement)
        rows = scratch.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return tuple(
            (
                kind,
                name,
                sql,
                frozenset(c["name"] for c in scratch.execute(f'PRAGMA table_info("{name}")'))
                if kind == "table"
                else frozenset(),
            )
            for kind, name, sql in rows
        )
    finally:
        scratch.close()


def target_schema() -> tuple[SchemaObject, ...]:
    """(type, name, sql, columns) of every object of the latest schema, in creation order."""
    return _target_schema()


def target_tables_sql(upto: int | None = None) -> dict[str, str]:
    """{table: CREATE TABLE sql} of the schema after migration ``upto`` (default: latest)."""
    return {name: sql for kind, name, sql, _ in _target_schema(upto) if kind == "table" and sql}


def target_columns() -> dict[str, frozenset[str]]:
    """{table: column names} of the latest schema."""
    return {name: cols for kind, name, _, cols in _target_schema() if kind == "table"}


def _table_exists(conn: driver.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None
