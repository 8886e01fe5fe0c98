"""Numbered SQL migrations for PostgreSQL: package data, applied in order, recorded once.

Each ``migrations/NNNN_name.sql`` runs in its own transaction together with the row that
records it in ``schema_migrations`` (in the current schema, like every table), under a
transaction-level advisory lock named after that schema: servers starting together against
one database queue on the lock, and each after the first finds the work done.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from psycopg import errors

from abathur_memory.errors import Unavailable
from abathur_memory.store.postgres.connection import Conn, Database
from abathur_memory.store.postgres.failures import message_of
from abathur_memory.store.postgres.placement import OWN_TABLE, VECTOR_SCHEMA

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
# One lock per schema: tests (and tenants) in other schemas of the database do not wait.
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('abathur-memory migrate ' || %s, 0))"
# CREATE EXTENSION is per database, and two at once can collide: a database-wide lock.
_EXTENSION_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('abathur-memory extension', 0))"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@cache
def load_migrations() -> tuple[Migration, ...]:
    """Every migration shipped with the package, in version order (1..n, no gaps)."""
    found = []
    folder = resources.files("abathur_memory.store.postgres").joinpath("migrations")
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return tuple(found)


async def migrate(db: Database) -> list[int]:
    """Bring the schema up to date; returns the versions applied now."""
    await ensure_vector(db)
    if set(await db.run(_applied, what="reading the schema version")) >= _known():
        return []  # the usual start: nothing to lock
    applied = []
    for migration in load_migrations():

        async def apply(conn: Conn, migration: Migration = migration) -> bool:
            async with conn.transaction():
                schema = await _current_schema(conn)
                await conn.execute(_LOCK, (schema,))
                await conn.execute(SCHEMA_MIGRATIONS_DDL)
                done = await _applied(conn)
                if migration.version in done:
                    return False
                await conn.execute(migration.sql.encode())  # no parameters: many statements
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                return True

        if await db.run(apply, what=f"applying migration {migration.version}"):
            applied.append(migration.version)
    if applied:
        log.info("applied PostgreSQL schema migrations %s", applied)
    return applied


def _known() -> set[int]:
    return {m.version for m in load_migrations()}


async def _current_schema(conn: Conn) -> str:
    row = await (await conn.execute("SELECT current_schema()")).fetchone()
    if row is None or row[0] is None:
        raise Unavailable("no schema of the connection's search_path exists to create tables in")
    return str(row[0])


async def _applied(conn: Conn) -> set[int]:
    """The versions recorded (none before the first migration); refuses a newer schema."""
    row = await (await conn.execute(OWN_TABLE, ("schema_migrations",))).fetchone()
    if row is None or not row[0]:
        return set()
    done = {
        r[0] for r in await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()
    }
    newer = done - _known()
    if newer:
        raise Unavailable(
            f"this database has schema version {max(newer)}, newer than this abathur-memory "
            f"understands ({max(_known())}); upgrade abathur-memory to open it"
        )
    return done


async def ensure_vector(db: Database) -> bool:
    """``CREATE EXTENSION IF NOT EXISTS vector``; True when it was created now (pooled
    connections are then replaced, so that they register pgvector's types). Unavailable,
    saying what to do, when the server lacks pgvector or the user may not create it."""

    async def create(conn: Conn) -> bool:
        if await _has_vector(conn):
            return False
        async with conn.transaction():
            await conn.execute(_EXTENSION_LOCK)
            if await _has_vector(conn):
                return False
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except errors.InsufficientPrivilege:
                raise Unavailable(
                    f"the database {db.label} needs the pgvector extension and this user may "
                    "not create it: ask a superuser (or the database owner) to run "
                    "`CREATE EXTENSION vector;` in that database, then start again"
                ) from None
            except (errors.FeatureNotSupported, errors.UndefinedFile) as exc:
                raise Unavailable(
                    f"the database {db.label} needs the pgvector extension, which its server "
                    f"lacks ({message_of(exc)}): install pgvector on the server "
                    "(https://github.com/pgvector/pgvector#installation, e.g. the "
                    "postgresql-NN-pgvector package), then start again"
                ) from None
            return True

    created = await db.run(create, what="creating the vector extension")
    if created:
        log.info("created the PostgreSQL extension vector in %s", db.label)
        await db.pool.drain()
    db.vector_schema = await db.run(vector_schema, what="finding the vector extension")
    return created


async def vector_schema(conn: Conn) -> str | None:
    """The schema pgvector was created in (None: not in this database)."""
    row = await (await conn.execute(VECTOR_SCHEMA)).fetchone()
    return None if row is None else str(row[0])


async def _has_vector(conn: Conn) -> bool:
    return await vector_schema(conn) is not None
