"""In-place upgrade of databases made before numbered migrations (seed 002's compatibility path).

An older abathur database has some of the seed tables but no ``schema_migrations``: tasks,
agents and checkpoints without ``session_id``, audit without the memory columns and with a
mandatory ``task_id``, no memory tables. Each such table whose definition differs from the
current one is rebuilt with SQLite's documented procedure (create new, copy, drop, rename),
inside the caller's transaction, keeping every row. Columns the old table lacks get their
default, or a value derived from the old columns where the new column is mandatory.
"""

from __future__ import annotations

import logging
import re

from abathur_memory.errors import InvalidInput
from abathur_memory.store.sqlite import driver

log = logging.getLogger(__name__)

SEED_TABLES = (
    "sessions",
    "memory_entries",
    "document_index",
    "tasks",
    "agents",
    "state",
    "audit",
    "metrics",
    "checkpoints",
)

# Values for mandatory columns an older layout did not have, computed from its own columns.
_FILL = {
    ("tasks", "last_updated_at"): "COALESCE(completed_at, started_at, submitted_at)",
    ("tasks", "input_data"): "'{}'",
    ("state", "created_at"): "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    ("state", "updated_at"): "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    ("metrics", "timestamp"): "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    ("checkpoints", "created_at"): "strftime('%Y-%m-%d %H:%M:%f', 'now')",
}

_CREATE_TABLE = re.compile(r'^CREATE TABLE\s+(?:IF NOT EXISTS\s+)?("?)(\w+)\1', re.IGNORECASE)


def legacy_tables(conn: driver.Connection) -> list[str]:
    """Seed tables present in the file (meaningful only before any migration is recorded)."""
    present = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    return [name for name in SEED_TABLES if name in present]


def adopt(conn: driver.Connection, target_sql: dict[str, str]) -> list[str]:
    """Rebuild every legacy table whose definition differs from ``target_sql``; return them."""
    rebuilt = []
    for table in legacy_tables(conn):
        current = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()[0]
        if _normalise(current) == _normalise(target_sql[table]):
            continue
        _rebuild(conn, table, target_sql[table])
        rebuilt.append(table)
    if rebuilt:
        log.warning("upgraded older-layout tables in place: %s", ", ".join(rebuilt))
    return rebuilt


def _rebuild(conn: driver.Connection, table: str, target_ddl: str) -> None:
    new_name = f"{table}__abathur_new"
    conn.execute(_CREATE_TABLE.sub(f'CREATE TABLE "{new_name}"', target_ddl, count=1))
    old_cols = _columns(conn, table)
    # Columns only the old layout has are carried over too: an upgrade never drops data.
    for name, declared_type in old_cols.items():
        if name not in _columns(conn, new_name):
            conn.execute(f'ALTER TABLE "{new_name}" ADD COLUMN "{name}" {declared_type}')
            log.warning("table %s: kept column %s that the new layout does not use", table, name)
    columns, expressions = [], []
    for col in conn.execute(f'PRAGMA table_info("{new_name}")').fetchall():
        name = col["name"]
        if name in old_cols:
            columns.append(name)
            expressions.append(f'"{name}"')
        elif (table, name) in _FILL:
            columns.append(name)
            expressions.append(_FILL[(table, name)])
        elif col["notnull"] and col["dflt_value"] is None:
            raise InvalidInput(
                f"cannot upgrade table {table}: new mandatory column {name} has no value "
                "to derive from the old layout; nothing was changed"
            )
    column_list = ", ".join(f'"{c}"' for c in columns)
    try:
        conn.execute(
            f'INSERT INTO "{new_name}" ({column_list}) '
            f'SELECT {", ".join(expressions)} FROM "{table}"'
        )
    except driver.IntegrityError as exc:
        raise InvalidInput(
            f"cannot upgrade table {table}: an existing row breaks a rule of the new schema "
            f"({exc}); nothing was changed"
        ) from None
    conn.execute(f'DROP TABLE "{table}"')
    conn.execute(f'ALTER TABLE "{new_name}" RENAME TO "{table}"')


def _columns(conn: driver.Connection, table: str) -> dict[str, str]:
    """{column: declared type} in table order."""
    return {row["name"]: row["type"] for row in conn.execute(f'PRAGMA table_info("{table}")')}


def _normalise(sql: str) -> str:
    sql = _CREATE_TABLE.sub(lambda m: f"CREATE TABLE {m[2]}", sql.strip(), count=1)
    return re.sub(r"\s+", " ", sql).lower()
