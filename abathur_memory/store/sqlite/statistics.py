"""Planner statistics that cannot mislead: none for small tables.

SQLite plans from ``sqlite_stat1``. Statistics taken while a table held three rows (what
``PRAGMA optimize`` records when a new database closes) make a scan look cheaper than an
index lookup, and they stay while the table grows: a batch of puts then scanned
``memory_entries`` once per key, and searches scanned the vector tables (issue 13).
Without statistics SQLite assumes a large table and uses the indexes, which is right at
every size. So statistics that describe fewer than :data:`MIN_ROWS` rows are dropped
wherever they are made (closing, ``maintain``, ``doctor --repair``, ``migrate``) or found
(opening).
"""

from __future__ import annotations

import logging

from abathur_memory.store.sqlite import driver

log = logging.getLogger(__name__)

# The size below which doctor accepts a scan (checks.SMALL_TABLE_ROWS): statistics of a
# smaller table say nothing the planner should plan a larger one by.
MIN_ROWS = 1000

_SMALL = """
SELECT tbl FROM sqlite_stat1
GROUP BY tbl
HAVING max(CAST(stat AS INTEGER)) < ?
"""


def small_tables(conn: driver.Connection) -> list[str]:
    """Tables whose statistics describe fewer than MIN_ROWS rows."""
    if not _has_stat1(conn):
        return []
    return [row[0] for row in conn.execute(_SMALL, (MIN_ROWS,))]


def drop_small(conn: driver.Connection) -> list[str]:
    """Delete the statistics of small tables and make this connection plan without them.

    Runs in its own transaction unless the caller has one open. Returns the tables."""
    tables = small_tables(conn)
    if not tables:
        return []
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        marks = ", ".join("?" for _ in tables)
        conn.execute(f"DELETE FROM sqlite_stat1 WHERE tbl IN ({marks})", tables)
        if _has(conn, "sqlite_stat4"):
            conn.execute(f"DELETE FROM sqlite_stat4 WHERE tbl IN ({marks})", tables)
        if own:
            conn.execute("COMMIT")
    except BaseException:
        if own and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("ANALYZE sqlite_schema")  # reload what is left (documented way)
    return tables


def drop_small_if_possible(conn: driver.Connection) -> None:
    """:func:`drop_small` where failing is harmless (opening, closing): a read-only or busy
    file keeps its statistics, and only plans suffer."""
    try:
        dropped = drop_small(conn)
    except driver.Error as exc:
        log.debug("statistics of small tables kept: %s", exc)
        return
    if dropped:
        log.debug("dropped the statistics of small tables: %s", ", ".join(dropped))


def _has_stat1(conn: driver.Connection) -> bool:
    return _has(conn, "sqlite_stat1")


def _has(conn: driver.Connection, table: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return found is not None
