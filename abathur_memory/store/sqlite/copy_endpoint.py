"""A SQLite file as `migrate` sees it (store/operations.py's Endpoint): tables of canonical
rows (copy_tables.py) that can be counted, read in key order from a position, and written a
batch per transaction with the copy's progress in the same transaction (so an interrupted
copy resumes where it stopped).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from abathur_memory.errors import InvalidInput, NotFound
from abathur_memory.store.copy_tables import (
    BOOL,
    BYTES,
    CLEAR_META,
    DATA_TABLES,
    JSON,
    TIME,
    VECTOR,
    Table,
    holds_user_data,
    json_text,
    json_value,
    keyset_where,
    parse_time,
    time_text,
)
from abathur_memory.store.sqlite import ann_files, driver
from abathur_memory.store.sqlite import migrate as sqlite_runner
from abathur_memory.store.sqlite import space_tables as sqlite_space_tables
from abathur_memory.store.sqlite.chunks import encoded


class SqliteEndpoint:
    kind = "sqlite"

    def __init__(self, path: Path, *, target: bool) -> None:
        self.label = str(path)
        self.path = path
        if not target:
            if not path.exists():
                raise NotFound(f"no database at {path}")
            self.conn = driver.connect(path, read_only=True)
            if sqlite_runner.current_version(self.conn) < sqlite_runner.latest_version():
                self.conn.close()
                raise InvalidInput(
                    f"{path} has an older schema: upgrade it first with "
                    f"`abathur-memory init --db {path}`"
                )
            return
        if path.exists() and path.stat().st_size and not _is_sqlite(path):
            raise InvalidInput(f"{path} exists and is not a SQLite database")
        if not path.parent.is_dir():
            raise NotFound(f"the directory {path.parent} does not exist")
        self.conn = driver.connect(path)
        try:
            sqlite_runner.migrate(self.conn)
        except BaseException:
            self.conn.close()
            raise

    def begin_snapshot(self) -> None:
        """Read everything from one snapshot (writers may go on; they are not copied)."""
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT count(*) FROM meta").fetchone()

    def end_snapshot(self) -> None:
        self.conn.execute("COMMIT")

    def spaces(self) -> list[tuple[int, int]]:
        return [
            (row[0], row[1])
            for row in self.conn.execute(
                "SELECT id, dim FROM embedding_spaces WHERE status != 'retired' ORDER BY id"
            )
        ]

    def _source(self, table: Table) -> tuple[str, str]:
        """The SELECT list and FROM clause of ``table`` on SQLite."""
        if table.name.startswith("chunks_s"):
            vectors = f"chunk_vectors_s{table.space_id}"
            names = [f"c.{c.name}" for c in table.columns if c.kind != VECTOR] + ["v.embedding"]
            return ", ".join(names), f"{table.name} AS c JOIN {vectors} AS v ON v.chunk_id = c.id"
        names = [c.sqlite or c.name for c in table.columns]
        return ", ".join(f'"{n}"' if n != "rowid" else n for n in names), table.name

    def count(self, table: Table) -> int:
        _, source = self._source(table)
        where, params = keyset_where(table, None, "?")
        return int(self.conn.execute(f"SELECT count(*) FROM {source}{where}", params).fetchone()[0])

    def read(self, table: Table, after: Sequence[Any] | None, limit: int) -> list[tuple[Any, ...]]:
        select, source = self._source(table)
        key = table.key
        if table.name.startswith("chunks_s"):
            key = tuple(f"c.{k}" for k in key)
        ordered = Table(table.name, table.columns, key, where=table.where)
        where, params = keyset_where(ordered, after, "?")
        rows = self.conn.execute(
            f"SELECT {select} FROM {source}{where} ORDER BY {', '.join(key)} LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [_from_sqlite(table, row) for row in rows]

    def write(self, table: Table, rows: list[tuple[Any, ...]], progress: str) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("PRAGMA defer_foreign_keys = ON")
            if table.name.startswith("chunks_s"):
                self._write_chunks(table, rows)
            else:
                names = [c.sqlite or c.name for c in table.columns]
                if table.name.startswith("memory_vectors_s"):
                    names.append("code")
                columns = ", ".join(f'"{n}"' if n != "rowid" else n for n in names)
                marks = ", ".join("?" for _ in names)
                self.conn.executemany(
                    f"INSERT INTO {table.name} ({columns}) VALUES ({marks})",
                    [_to_sqlite(table, row) for row in rows],
                )
            self._set_meta("migration_progress", progress)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # SQLite ends it itself on a full disk
                self.conn.execute("ROLLBACK")
            raise

    def _write_chunks(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        names = [c.name for c in table.columns if c.kind != VECTOR]
        marks = ", ".join("?" for _ in names)
        for row in rows:
            values = _to_sqlite(table, row)
            embedding = row[-1]
            self.conn.execute(
                f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})", values[:-1]
            )
            blob, code = encoded(np.asarray(embedding, dtype=np.float32))
            self.conn.execute(
                f"INSERT INTO chunk_vectors_s{table.space_id} (chunk_id, embedding, code)"
                " VALUES (?, ?, ?)",
                (row[0], blob, code),
            )

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET"
            " value = excluded.value",
            (key, value),
        )

    def set_meta(self, key: str, value: str) -> None:
        self._set_meta(key, value)

    def holds_user_data(self) -> bool:
        return holds_user_data(lambda sql: self.conn.execute(sql).fetchone()[0])

    def clear(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for space_id, _ in self.spaces():
                for name in sqlite_space_tables.table_names(space_id):
                    self.conn.execute(f"DROP TABLE IF EXISTS {name}")
            for name in DATA_TABLES:
                self.conn.execute(f"DELETE FROM {name}")
            self.conn.execute(CLEAR_META)
            self.conn.execute("COMMIT")
            # An approximate index saved beside the target described what was there before:
            # a server rebuilds it from the copied vectors.
            ann_files.discard(self.path)
        except BaseException:
            if self.conn.in_transaction:  # SQLite ends it itself on a full disk
                self.conn.execute("ROLLBACK")
            raise

    def create_space(self, space_id: int, dim: int) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        sqlite_space_tables.create(self.conn, space_id)
        self.conn.execute("COMMIT")

    def finish_tasks(self, parents: list[tuple[str, str]]) -> None:
        """Nothing to do: SQLite checks the parents at commit (defer_foreign_keys)."""

    def finish(self, progress: Callable[[str, int, int], None] | None = None) -> None:
        """The memory keyword index is derived: rebuilt from the copied memories."""
        self.set_meta("memory_index_audit_id", "-1")

    def close(self) -> None:
        self.conn.close()


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(16) == b"SQLite format 3\x00"


def _from_sqlite(table: Table, row: Sequence[Any]) -> tuple[Any, ...]:
    values: list[Any] = []
    for column, value in zip(table.columns, row, strict=True):
        if value is None and column.null_as is not None:
            value = column.null_as
        if value is None:
            values.append(None)
        elif column.kind == JSON:
            values.append(json_value(value))
        elif column.kind == TIME:
            values.append(parse_time(value))
        elif column.kind == BOOL:
            values.append(bool(value))
        elif column.kind == VECTOR:
            values.append(np.frombuffer(value, dtype="<f4").astype(np.float32))
        elif column.kind == BYTES:
            values.append(bytes(value))
        else:
            values.append(value)
    return tuple(values)


def _to_sqlite(table: Table, row: Sequence[Any]) -> tuple[Any, ...]:
    values: list[Any] = []
    for column, value in zip(table.columns, row, strict=True):
        if value is None:
            values.append(None)
        elif column.kind == JSON:
            values.append(json_text(value))
        elif column.kind == TIME:
            values.append(time_text(value))
        elif column.kind == BOOL:
            values.append(1 if value else 0)
        elif column.kind == VECTOR:  # the float32 bytes, and (memory vectors) the 1-bit code
            blob, code = encoded(np.asarray(value, dtype=np.float32))
            values.extend([blob, code] if table.name.startswith("memory_vectors_s") else [blob])
        else:
            values.append(value)
    return tuple(values)
