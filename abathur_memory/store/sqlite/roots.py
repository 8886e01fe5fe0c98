"""Document roots on SQLite."""

from __future__ import annotations

import json
from pathlib import Path

from abathur_memory.core.documents import (
    Registered,
    Root,
    check_visibility,
    encode_excludes,
    root_name_of,
)
from abathur_memory.core.principal import Principal
from abathur_memory.core.root_rules import new_name, new_root, registered_again
from abathur_memory.errors import NotFound
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite.database import Database


def root_from_row(row: driver.Row) -> Root:
    return Root(
        id=row["id"],
        name=row["name"],
        path=Path(row["path"]),
        excludes=tuple(json.loads(row["excludes"])),
        last_scan_at=timestamps.to_iso(row["last_scan_at"]),
        owner=row["owner"],
        project=row["project"],
        visibility=row["visibility"],
    )


def all_roots(conn: driver.Connection) -> list[Root]:
    return [root_from_row(r) for r in conn.execute("SELECT * FROM doc_roots ORDER BY name")]


def _get(conn: driver.Connection, name: str) -> Root:
    row = conn.execute("SELECT * FROM doc_roots WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no root named {name!r}")
    return root_from_row(row)


def _ensure(
    conn: driver.Connection,
    directory: Path,
    name: str | None,
    excludes: tuple[str, ...],
    owner: Principal | None,
    visibility: str | None,
) -> Registered:
    row = conn.execute("SELECT * FROM doc_roots WHERE path = ?", (str(directory),)).fetchone()
    if row is not None:
        root = root_from_row(row)
        changes = registered_again(root, directory, name, excludes, visibility)
        if changes.excludes is not None or changes.visibility is not None:
            root = _update(
                conn, root.name, excludes=changes.excludes, visibility=changes.visibility
            )
        return Registered(root, changes.notes)
    taken = {r[0] for r in conn.execute("SELECT name FROM doc_roots")}
    new = new_root(directory, name, taken, owner, visibility)
    row = conn.execute(
        "INSERT INTO doc_roots (name, path, excludes, owner, project, visibility)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        (
            new.name,
            str(directory),
            encode_excludes(excludes),
            new.owner,
            new.project,
            new.visibility,
        ),
    ).fetchone()
    return Registered(root_from_row(row))


def _update(
    conn: driver.Connection,
    name: str,
    *,
    excludes: tuple[str, ...] | None = None,
    visibility: str | None = None,
    owner: str | None = None,
) -> Root:
    root = _get(conn, name)
    if excludes is not None:
        conn.execute(
            "UPDATE doc_roots SET excludes = ? WHERE id = ?", (encode_excludes(excludes), root.id)
        )
    if owner is not None:
        conn.execute("UPDATE doc_roots SET owner = ? WHERE id = ?", (owner, root.id))
    if visibility is not None:
        check_visibility(visibility, root.project)
        conn.execute("UPDATE doc_roots SET visibility = ? WHERE id = ?", (visibility, root.id))
    return _get(conn, name)


def _rename(conn: driver.Connection, old: str, new: str) -> Root:
    root = _get(conn, old)
    new = root_name_of(new)
    taken = conn.execute("SELECT 1 FROM doc_roots WHERE name = ?", (new,)).fetchone()
    new = new_name(new, taken is not None)
    conn.execute("UPDATE doc_roots SET name = ? WHERE id = ?", (new, root.id))
    conn.execute(
        "UPDATE document_index SET file_path = ? || substr(file_path, ?) WHERE root_id = ?",
        (new + "/", len(old) + 2, root.id),
    )
    return _get(conn, new)


def _remove(conn: driver.Connection, name: str) -> int:
    root = _get(conn, name)
    removed = conn.execute("DELETE FROM document_index WHERE root_id = ?", (root.id,)).rowcount
    conn.execute("DELETE FROM doc_roots WHERE id = ?", (root.id,))
    return int(removed)


class SqliteRootStore:
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
        return await self.db.write(_ensure, directory, name, excludes, owner, visibility)

    async def all(self) -> list[Root]:
        return await self.db.read(all_roots)

    async def exists(self, name: str) -> bool:
        return await self.db.fetchone("SELECT 1 FROM doc_roots WHERE name = ?", (name,)) is not None

    async def update(
        self,
        name: str,
        *,
        excludes: tuple[str, ...] | None = None,
        visibility: str | None = None,
        owner: str | None = None,
    ) -> Root:
        return await self.db.write(
            _update, name, excludes=excludes, visibility=visibility, owner=owner
        )

    async def rename(self, old: str, new: str) -> Root:
        return await self.db.write(_rename, old, new)

    async def remove(self, name: str) -> int:
        return await self.db.write(_remove, name)
