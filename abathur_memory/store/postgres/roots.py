"""Document roots on PostgreSQL (the rules are SQLite's, store/sqlite/roots.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from abathur_memory.core.documents import (
    Registered,
    Root,
    check_visibility,
    root_name_of,
)
from abathur_memory.core.principal import Principal
from abathur_memory.core.root_rules import new_name, new_root, registered_again
from abathur_memory.errors import NotFound
from abathur_memory.store.postgres.connection import Conn, Database

_COLUMNS = "id, name, path, excludes, last_scan_at, owner, project, visibility"
_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended('abathur-memory roots ' || current_schema(), 0))"
)


def root_of(row: Sequence[Any]) -> Root:
    return Root(
        id=row[0],
        name=row[1],
        path=Path(row[2]),
        excludes=tuple(row[3]),
        last_scan_at=row[4],
        owner=row[5],
        project=row[6],
        visibility=row[7],
    )


async def all_roots(conn: Conn) -> list[Root]:
    rows = await (await conn.execute(f"SELECT {_COLUMNS} FROM doc_roots ORDER BY name")).fetchall()
    return [root_of(row) for row in rows]


async def _get(conn: Conn, name: str) -> Root:
    row = await (
        await conn.execute(f"SELECT {_COLUMNS} FROM doc_roots WHERE name = %s", (name,))
    ).fetchone()
    if row is None:
        raise NotFound(f"no root named {name!r}")
    return root_of(row)


async def _ensure(
    conn: Conn,
    directory: Path,
    name: str | None,
    excludes: tuple[str, ...],
    owner: Principal | None,
    visibility: str | None,
) -> Registered:
    await conn.execute(_LOCK)  # two servers registering one folder make one root
    row = await (
        await conn.execute(f"SELECT {_COLUMNS} FROM doc_roots WHERE path = %s", (str(directory),))
    ).fetchone()
    if row is not None:
        root = root_of(row)
        changes = registered_again(root, directory, name, excludes, visibility)
        if changes.excludes is not None or changes.visibility is not None:
            root = await _update(
                conn, root.name, excludes=changes.excludes, visibility=changes.visibility
            )
        return Registered(root, changes.notes)
    taken = {r[0] for r in await (await conn.execute("SELECT name FROM doc_roots")).fetchall()}
    new = new_root(directory, name, taken, owner, visibility)
    row = await (
        await conn.execute(
            "INSERT INTO doc_roots (name, path, excludes, owner, project, visibility)"
            f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (
                new.name,
                str(directory),
                Jsonb(list(excludes)),
                new.owner,
                new.project,
                new.visibility,
            ),
        )
    ).fetchone()
    assert row is not None
    return Registered(root_of(row))


async def _update(
    conn: Conn,
    name: str,
    *,
    excludes: tuple[str, ...] | None = None,
    visibility: str | None = None,
    owner: str | None = None,
) -> Root:
    root = await _get(conn, name)
    if excludes is not None:
        await conn.execute(
            "UPDATE doc_roots SET excludes = %s WHERE id = %s", (Jsonb(list(excludes)), root.id)
        )
    if owner is not None:
        await conn.execute("UPDATE doc_roots SET owner = %s WHERE id = %s", (owner, root.id))
    if visibility is not None:
        check_visibility(visibility, root.project)
        await conn.execute(
            "UPDATE doc_roots SET visibility = %s WHERE id = %s", (visibility, root.id)
        )
    return await _get(conn, name)


async def _rename(conn: Conn, old: str, new: str) -> Root:
    root = await _get(conn, old)
    new = root_name_of(new)
    taken = await (await conn.execute("SELECT 1 FROM doc_roots WHERE name = %s", (new,))).fetchone()
    new = new_name(new, taken is not None)
    await conn.execute("UPDATE doc_roots SET name = %s WHERE id = %s", (new, root.id))
    await conn.execute(
        "UPDATE document_index SET file_path = %s || substr(file_path, %s) WHERE root_id = %s",
        (new + "/", len(old) + 2, root.id),
    )
    return await _get(conn, new)


async def _remove(conn: Conn, name: str) -> int:
    root = await _get(conn, name)
    cur = await conn.execute("DELETE FROM document_index WHERE root_id = %s", (root.id,))
    await conn.execute("DELETE FROM doc_roots WHERE id = %s", (root.id,))
    return cur.rowcount


class PostgresRootStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure(
        self,
        directory: Path,
        name: str | None,
        excludes: tuple[str, ...],
        owner: Principal | None,
        visibility: str | None,
    ) -> Registered:
        return await self.db.transaction(
            lambda conn: _ensure(conn, directory, name, excludes, owner, visibility),
            what="registering a root",
        )

    async def all(self) -> list[Root]:
        return await self.db.run(all_roots, what="reading the roots")

    async def exists(self, name: str) -> bool:
        return (
            await self.db.fetchone("SELECT 1 FROM doc_roots WHERE name = %s", (name,)) is not None
        )

    async def update(
        self,
        name: str,
        *,
        excludes: tuple[str, ...] | None = None,
        visibility: str | None = None,
        owner: str | None = None,
    ) -> Root:
        return await self.db.transaction(
            lambda conn: _update(conn, name, excludes=excludes, visibility=visibility, owner=owner),
            what="changing a root",
        )

    async def rename(self, old: str, new: str) -> Root:
        return await self.db.transaction(
            lambda conn: _rename(conn, old, new), what="renaming a root"
        )

    async def remove(self, name: str) -> int:
        return await self.db.transaction(lambda conn: _remove(conn, name), what="removing a root")
