"""Plain SQL on a test's database, whichever the backend: for tests that look behind the
services (how many rows, did anything change, an old timestamp planted for the lifecycle).

The SQL is written once, with ``?`` placeholders; on PostgreSQL they become ``%s``. Rows
answer both ``row[0]`` and ``row["column"]`` (and ``dict(row)``), as sqlite3.Row does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from abathur_memory.store.sqlite import driver


def is_postgres(db: str | Path) -> bool:
    return str(db).startswith(("postgresql://", "postgres://"))


class Row(tuple):
    """A tuple that also answers by column name."""

    _names: tuple[str, ...] = ()

    def keys(self) -> tuple[str, ...]:
        return self._names

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, str):
            return tuple.__getitem__(self, self._names.index(index))
        return tuple.__getitem__(self, index)


def _row_factory(cursor: Any) -> Any:
    names = tuple(column.name for column in cursor.description or ())

    def make(values: Sequence[Any]) -> Row:
        row = Row(values)
        row._names = names
        return row

    return make


def _pg(sql: str, params: Sequence[Any]) -> tuple[str, Sequence[Any] | None]:
    """SQLite's ``?`` placeholders as psycopg's (a literal % doubled only when there are
    parameters: without, psycopg sends the text as it is)."""
    if not params:
        return sql, None
    return sql.replace("%", "%%").replace("?", "%s"), params


class SyncSql:
    """A synchronous connection to either backend (for checks between calls)."""

    def __init__(self, db: str | Path) -> None:
        self.postgres = is_postgres(db)
        if self.postgres:
            import psycopg

            self._conn: Any = psycopg.connect(str(db), autocommit=True, row_factory=_row_factory)
        else:
            self._conn = driver.connect(Path(db))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.postgres:
            return self._conn.execute(*_pg(sql, params))
        return self._conn.execute(sql, params)

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        self._conn.close()


@contextlib.contextmanager
def sync_sql(db: str | Path) -> Iterator[SyncSql]:
    conn = SyncSql(db)
    try:
        yield conn
    finally:
        conn.close()


class Raw:
    """Async plain SQL on a runtime's store (SQLite's Database or PostgreSQL's pool)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.postgres = store.kind == "postgres"

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if not self.postgres:
            return list(await self.store.db.fetchall(sql, params))

        async def work(conn: Any) -> list[Any]:
            cur = conn.cursor(row_factory=_row_factory)
            await cur.execute(*_pg(sql, params))
            return await cur.fetchall()

        return await self.store.database.run(work)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        found = await self.fetchall(sql, params)
        return found[0] if found else None

    async def execute_write(self, sql: str, params: Sequence[Any] = ()) -> int:
        if not self.postgres:
            return await self.store.db.execute_write(sql, params)

        async def work(conn: Any) -> int:
            cur = await conn.execute(*_pg(sql, params))
            return cur.rowcount

        return await self.store.database.run(work)

    async def now_iso(self) -> str:
        """The database's clock, as the records show times."""
        if self.postgres:
            row = await self.fetchone(
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC',"
                ' \'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\')'
            )
        else:
            row = await self.fetchone("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
        return str(row[0])


def json_value(stored: Any) -> Any:
    """A JSON column as Python: SQLite hands out its text, PostgreSQL the decoded jsonb."""
    import json

    return json.loads(stored) if isinstance(stored, str) else stored


def json_text(raw: Any, column: str, field: str) -> str:
    """SQL for the text of ``column``'s top-level ``field``, on either backend."""
    if raw.postgres:
        return f"{column}->>'{field}'"
    return f"json_extract({column}, '$.{field}')"


async def table_names(raw: Any) -> set[str]:
    if raw.postgres:
        rows = await raw.fetchall(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    else:
        rows = await raw.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in rows}
