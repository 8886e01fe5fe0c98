"""Document roots: the folders whose markdown is indexed, each with a short unique name.

A document is shown as ``<root name>/<path within the root>`` (``notes/ideas/today.md``), so
one string names it across several roots.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from abathur_memory.errors import InvalidInput, NotFound
from abathur_memory.storage import driver

_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Root:
    id: int
    name: str
    path: Path
    excludes: tuple[str, ...]
    last_scan_at: str | None

    @classmethod
    def from_row(cls, row: driver.Row) -> Root:
        return cls(
            id=row["id"],
            name=row["name"],
            path=Path(row["path"]),
            excludes=tuple(json.loads(row["excludes"])),
            last_scan_at=row["last_scan_at"],
        )


def resolve_root_dir(path: str | Path) -> Path:
    """An existing directory, absolute and resolved; a clear error otherwise."""
    candidate = Path(path).expanduser()
    if not candidate.exists():
        raise NotFound(f"the folder {candidate} does not exist")
    if not candidate.is_dir():
        raise InvalidInput(f"{candidate} is a file; give the folder that holds the markdown")
    return candidate.resolve()


def parse_root_spec(spec: str) -> tuple[str | None, str]:
    """``NAME=DIR`` or ``DIR``."""
    if "=" in spec and not Path(spec).exists():
        name, _, directory = spec.partition("=")
        if name and directory:
            return name, directory
    return None, spec


def ensure_root(
    conn: driver.Connection,
    directory: Path,
    name: str | None = None,
    excludes: tuple[str, ...] = (),
) -> Root:
    """The root for ``directory`` (registering it if new). Runs in a write transaction."""
    row = conn.execute("SELECT * FROM doc_roots WHERE path = ?", (str(directory),)).fetchone()
    if row is not None:
        if excludes and tuple(json.loads(row["excludes"])) != tuple(excludes):
            conn.execute(
                "UPDATE doc_roots SET excludes = ? WHERE id = ?",
                (json.dumps(list(excludes)), row["id"]),
            )
            row = conn.execute("SELECT * FROM doc_roots WHERE id = ?", (row["id"],)).fetchone()
        return Root.from_row(row)
    wanted = _clean_name(name or directory.name or "root")
    taken = {r[0] for r in conn.execute("SELECT name FROM doc_roots")}
    if name is not None and wanted in taken:
        raise InvalidInput(f"a root named {wanted!r} already exists; choose another name")
    final, n = wanted, 2
    while final in taken:
        final, n = f"{wanted}-{n}", n + 1
    row = conn.execute(
        "INSERT INTO doc_roots (name, path, excludes) VALUES (?, ?, ?) RETURNING *",
        (final, str(directory), json.dumps(list(excludes))),
    ).fetchone()
    return Root.from_row(row)


def list_roots(conn: driver.Connection) -> list[Root]:
    return [Root.from_row(r) for r in conn.execute("SELECT * FROM doc_roots ORDER BY name")]


def remove_root(conn: driver.Connection, name: str) -> int:
    """Forget a root and everything indexed from it; returns the documents removed."""
    row = conn.execute("SELECT id FROM doc_roots WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no root named {name!r}")
    removed = conn.execute("DELETE FROM document_index WHERE root_id = ?", (row["id"],)).rowcount
    conn.execute("DELETE FROM doc_roots WHERE id = ?", (row["id"],))
    return removed


def _clean_name(name: str) -> str:
    cleaned = _NAME.sub("-", name).strip("-.") or "root"
    return cleaned[:64]
