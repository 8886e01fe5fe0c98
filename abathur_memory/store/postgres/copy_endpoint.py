"""A PostgreSQL schema as `migrate` sees it (store/operations.py's Endpoint): tables of
canonical rows (copy_tables.py) that can be counted, read in key order from a position, and
written a batch per transaction with the copy's progress in the same transaction (so an
interrupted copy resumes where it stopped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from abathur_memory.config import Settings
from abathur_memory.errors import Unavailable
from abathur_memory.store.copy_tables import (
    BYTES,
    CLEAR_META,
    DATA_TABLES,
    JSON,
    JSON_NULL,
    TIME,
    VECTOR,
    Table,
    holds_user_data,
    json_value,
    keyset_where,
    parse_time,
    space_tables,
)

if TYPE_CHECKING:
    import psycopg

# One copy at a time into a target schema: a session-level lock, named after the schema.
COPY_LOCK = (
    "SELECT pg_try_advisory_lock(hashtextextended('abathur-memory copy ' || current_schema(), 0))"
)

log = logging.getLogger(__name__)

# Memory for building an HNSW index after a copy. A graph that outgrows maintenance_work_mem
# is built on disk, many times slower: 1,000,000 vectors of 384 dimensions under 512 MB had
# loaded 477,590 after 28 minutes on two cores. So the setting (for that statement only) is
# sized from the rows: each holds its vector and its layer-0 neighbours (2m of them, m = 16)
# with pgvector's overhead, between a floor and a ceiling; never below the server's own.
HNSW_BUILD_FLOOR_MB = 512
HNSW_BUILD_CEILING_MB = 4096
HNSW_BYTES_PER_NEIGHBOUR = 16
HNSW_ROW_OVERHEAD = 256


def hnsw_build_memory_mb(
    rows: int, dim: int, server_mb: int, ceiling_mb: int = HNSW_BUILD_CEILING_MB
) -> int:
    """maintenance_work_mem for building the HNSW index of ``rows`` vectors of ``dim``
    (``ceiling_mb``: settings.pg_index_build_mb)."""
    per_row = dim * 4 + 2 * 16 * HNSW_BYTES_PER_NEIGHBOUR + HNSW_ROW_OVERHEAD
    wanted = int(rows * per_row * 1.2 / 2**20) + 1
    floor = min(HNSW_BUILD_FLOOR_MB, ceiling_mb)
    return max(server_mb, min(ceiling_mb, max(floor, wanted)))


class PostgresEndpoint:
    kind = "postgres"

    def __init__(self, url: str, settings: Settings, *, target: bool) -> None:
        self.index_build_mb = settings.pg_index_build_mb
        import psycopg

        from abathur_memory.store.postgres import placement
        from abathur_memory.store.postgres.connection import redact, register_vector

        self.label = redact(url)
        self._lock: psycopg.Connection[Any] | None = None
        self.vector_schema: str | None = None
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise Unavailable(f"cannot connect to PostgreSQL at {self.label}: {exc}") from None
        try:
            self.conn.execute("SET TimeZone = 'UTC'")
            self.conn.execute(
                "SELECT set_config('statement_timeout', %s, false)",
                (str(settings.pg_statement_timeout_ms * 10),),
            )
            if target:
                self._lock = self._claim(url)
                self._migrate(url, settings)
            row = self.conn.execute(placement.PROBE, (list(placement.our_tables()),)).fetchone()
            where = placement.placement_of(row)
            placement.check(where, self.label)  # (the target's store checked it too)
            self.vector_schema = where.vector_schema
            if self.vector_schema is not None:
                register_vector(self.conn, self.vector_schema)
        except BaseException:
            self.close()
            raise
        self._hnsw_pending: list[tuple[int, int]] = []

    def _claim(self, url: str) -> psycopg.Connection[Any] | None:
        """The copy's lock on the target schema, held by a connection of its own until
        ``close``: a second `migrate` into the same target stops here, before it writes."""
        import psycopg

        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise Unavailable(f"cannot connect to PostgreSQL at {self.label}: {exc}") from None
        row = conn.execute(COPY_LOCK).fetchone()
        if row is None or row[0] is None:  # no schema to copy into: the store says so next
            conn.close()
            return None
        if not row[0]:
            conn.close()
            raise Unavailable(
                f"another `abathur-memory migrate` is copying into {self.label} right now: "
                "wait for it to finish (run this again after an interruption and it resumes)"
            )
        return conn

    def begin_snapshot(self) -> None:
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def end_snapshot(self) -> None:
        self.conn.execute("COMMIT")

    @staticmethod
    def _migrate(url: str, settings: Settings) -> None:
        """The schema, through the store (its migrations create the vector extension)."""
        import asyncio

        from abathur_memory.store.postgres.store import PostgresStore

        async def run() -> None:
            store = await PostgresStore.open(url, settings, create=True, allow_incomplete=True)
            try:
                await store.migrate()
            finally:
                await store.close()

        asyncio.run(run())

    def spaces(self) -> list[tuple[int, int]]:
        return [
            (row[0], row[1])
            for row in self.conn.execute(
                "SELECT id, dim FROM embedding_spaces WHERE status != 'retired' ORDER BY id"
            ).fetchall()
        ]

    def count(self, table: Table) -> int:
        where, params = keyset_where(table, None, "%s")
        row = self.conn.execute(f"SELECT count(*) FROM {table.name}{where}", params).fetchone()
        return int(row[0]) if row else 0

    def read(self, table: Table, after: Sequence[Any] | None, limit: int) -> list[tuple[Any, ...]]:
        where, params = keyset_where(table, after, "%s")
        # JSON as its text: a JSON null and SQL NULL must not both arrive as None
        columns = ", ".join(
            f'"{c.name}"::text' if c.kind == JSON else f'"{c.name}"' for c in table.columns
        )
        rows = self.conn.execute(
            f"SELECT {columns} FROM {table.name}{where} ORDER BY {', '.join(table.key)} LIMIT %s",
            [*params, limit],
        ).fetchall()
        return [_from_postgres(table, row) for row in rows]

    def write(self, table: Table, rows: list[tuple[Any, ...]], progress: str) -> None:
        columns = ", ".join(f'"{c.name}"' for c in table.columns)
        with self.conn.transaction():
            with self.conn.cursor() as cur:
                if table.name == "tasks":
                    # A parent may come after its child in key order: parents are set by
                    # finish_tasks once every task exists.
                    rows = [_without_parent(table, row) for row in rows]
                with cur.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(_to_postgres(table, row))
            self._set_meta("migration_progress", progress)

    def finish_tasks(self, parents: list[tuple[str, str]]) -> None:
        if not parents:
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "UPDATE tasks SET parent_task_id = %s WHERE id = %s",
                [(parent, child) for child, parent in parents],
            )

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET"
            " value = excluded.value",
            (key, value),
        )

    def set_meta(self, key: str, value: str) -> None:
        self._set_meta(key, value)

    def holds_user_data(self) -> bool:
        def scalar(sql: str) -> Any:
            row = self.conn.execute(sql).fetchone()
            return row[0] if row else 0

        return holds_user_data(scalar)

    def clear(self) -> None:
        from abathur_memory.store.postgres import space_tables as pg_space_tables

        with self.conn.transaction():
            for space_id, _ in self.spaces():
                for name in pg_space_tables.table_names(space_id):
                    self.conn.execute(f"DROP TABLE IF EXISTS {name}".encode())
            self.conn.execute(f"TRUNCATE {', '.join(DATA_TABLES)} CASCADE".encode())
            self.conn.execute(CLEAR_META.encode())

    def create_space(self, space_id: int, dim: int) -> None:
        from abathur_memory.store.postgres.space_tables import HNSW_MAX_DIM, LATEST, STEPS

        with self.conn.transaction():
            for step in STEPS:
                for statement in step(space_id, dim, self.vector_schema):
                    # The vector index is built once, after the copy (much faster); steps
                    # that fill rows in have nothing to fill in a new space.
                    if not isinstance(statement, str) or "USING hnsw" in statement:
                        continue
                    self.conn.execute(statement.encode())
            self.conn.execute(
                "UPDATE embedding_spaces SET ddl_version = %s WHERE id = %s", (LATEST, space_id)
            )
        if dim <= HNSW_MAX_DIM:
            self._hnsw_pending.append((space_id, dim))

    def finish(self, progress: Callable[[str, int, int], None] | None = None) -> None:
        """Sequences past the copied ids, the vector indexes built, and the memory keyword
        index rebuilt from the copied memories (it is derived).

        An HNSW index over a million vectors takes about ten minutes to build on two cores,
        longer than any statement timeout meant for requests: each is built with none, with
        memory for its graph (hnsw_build_memory_mb, logged), and the progress says which one
        is being built."""
        from abathur_memory.store.postgres.space_tables import HNSW_MAX_DIM, hnsw

        for table in _identity_tables(self.spaces()):
            name, column = table.name, table.identity
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{name}', '{column}'),"
                f" COALESCE((SELECT max({column}) FROM {name}), 0) + 1, false)".encode()
            )
        indexes = [
            (name, dim)
            for space_id, dim in self.spaces()
            if dim <= HNSW_MAX_DIM
            for name in (f"chunks_s{space_id}", f"memory_vectors_s{space_id}")
        ]
        for number, (name, dim) in enumerate(indexes):
            with self.conn.transaction():
                rows = self.conn.execute(f"SELECT count(*) FROM {name}".encode()).fetchone()
                server = self.conn.execute(
                    b"SELECT setting::bigint * 1024 / 1048576 FROM pg_settings"
                    b" WHERE name = 'maintenance_work_mem'"
                ).fetchone()
                memory = hnsw_build_memory_mb(
                    int(rows[0]) if rows else 0,
                    dim,
                    int(server[0]) if server else 0,
                    self.index_build_mb,
                )
                if progress:
                    progress(
                        f"building the vector index of {name} (no time limit)", number, len(indexes)
                    )
                count = int(rows[0]) if rows else 0
                log.info("building the HNSW index of %s (%d rows) in %d MB", name, count, memory)
                self.conn.execute("SET LOCAL statement_timeout = 0")
                self.conn.execute(f"SET LOCAL maintenance_work_mem = '{memory}MB'".encode())
                self.conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {name}_embedding ON {name} ".encode()
                    + hnsw("embedding", self.vector_schema).encode()
                )
        if progress and indexes:
            progress("building the vector indexes", len(indexes), len(indexes))
        self._set_meta("memory_index_snapshot", "rebuild")
        self.conn.execute("ANALYZE")

    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()
        if self._lock is not None:
            self._lock.close()  # ends the session: the copy's lock is released
            self._lock = None


def _identity_tables(spaces: list[tuple[int, int]]) -> list[Table]:
    from abathur_memory.store.copy_tables import BASE_TABLES

    tables = [t for t in BASE_TABLES if t.identity]
    for space_id, dim in spaces:
        tables.extend(space_tables(space_id, dim))
    return tables


def _without_parent(table: Table, row: tuple[Any, ...]) -> tuple[Any, ...]:
    index = table.column_names().index("parent_task_id")
    return (*row[:index], None, *row[index + 1 :])


def _from_postgres(table: Table, row: Sequence[Any]) -> tuple[Any, ...]:
    values: list[Any] = []
    for column, value in zip(table.columns, row, strict=True):
        if value is None:
            values.append(None)
        elif column.kind == JSON:
            values.append(json_value(value))
        elif column.kind == TIME:
            values.append(parse_time(value))
        elif column.kind == VECTOR:
            values.append(as_array(value))
        elif column.kind == BYTES:
            values.append(bytes(value))
        else:
            values.append(value)
    return tuple(values)


def as_array(value: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A pgvector value (its Vector type, or an array) as float32."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)


def _to_postgres(table: Table, row: Sequence[Any]) -> tuple[Any, ...]:
    from psycopg.types.json import Jsonb

    values: list[Any] = []
    for column, value in zip(table.columns, row, strict=True):
        if value is None:
            values.append(None)
        elif column.kind == JSON:
            values.append(Jsonb(None if value is JSON_NULL else value))
        elif column.kind == VECTOR:
            values.append(np.asarray(value, dtype=np.float32))
        else:
            values.append(value)
    return tuple(values)
