"""Document roots: the folders whose markdown is indexed, each with a short unique name, an
owner and a visibility.

A document is shown as ``<root name>/<path within the root>`` (``notes/ideas/today.md``), so
one string names it across several roots. A root belongs to the user who registered it;
``visibility`` says who else may search and read it: ``private`` (its owner only),
``project`` (principals of the root's project) or ``all``. An admin principal sees every
root. Roots registered before owners existed have none and are visible to all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from abathur_memory.errors import InvalidInput, NotFound
from abathur_memory.memory.namespaces import Principal
from abathur_memory.store.sqlite import driver

_NAME = re.compile(r"[^A-Za-z0-9._-]+")
VISIBILITIES = ("private", "project", "all")


@dataclass(frozen=True)
class Root:
    id: int
    name: str
    path: Path
    excludes: tuple[str, ...]
    last_scan_at: str | None
    owner: str | None = None
    project: str | None = None
    visibility: str = "all"

    @classmethod
    def from_row(cls, row: driver.Row) -> Root:
        return cls(
            id=row["id"],
            name=row["name"],
            path=Path(row["path"]),
            excludes=tuple(json.loads(row["excludes"])),
            last_scan_at=row["last_scan_at"],
            owner=row["owner"],
            project=row["project"],
            visibility=row["visibility"],
        )

    def visible_to(self, principal: Principal | None) -> bool:
        """None stands for the machine's operator (the CLI's maintenance commands)."""
        if principal is None or principal.admin or self.visibility == "all":
            return True
        if self.owner == principal.user:
            return True
        return (
            self.visibility == "project"
            and self.project is not None
            and self.project == principal.project
        )

    def owned_by(self, principal: Principal | None) -> bool:
        return principal is None or principal.admin or self.owner in (None, principal.user)


@dataclass
class Registered:
    root: Root
    notes: list[str] = field(default_factory=list)  # what the user should know (said once)


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


def check_visibility(visibility: str, project: str | None) -> str:
    if visibility not in VISIBILITIES:
        raise InvalidInput(f"visibility must be one of {', '.join(VISIBILITIES)}")
    if visibility == "project" and not project:
        raise InvalidInput("visibility 'project' needs a project (--project or ABATHUR_PROJECT)")
    return visibility


def ensure_root(
    conn: driver.Connection,
    directory: Path,
    name: str | None = None,
    excludes: tuple[str, ...] = (),
    *,
    owner: Principal | None = None,
    visibility: str | None = None,
) -> Registered:
    """The root for ``directory`` (registering it if new). Runs in a write transaction.

    A known folder keeps its name (a different ``name`` is reported in ``notes``); given
    excludes or visibility replace the stored ones.
    """
    row = conn.execute("SELECT * FROM doc_roots WHERE path = ?", (str(directory),)).fetchone()
    if row is not None:
        root = Root.from_row(row)
        notes = []
        if name is not None and _clean_name(name) != root.name:
            notes.append(
                f"{directory} is already indexed as {root.name!r}; the name {name!r} was not "
                f"used (`abathur-memory roots --rename {root.name} {name}` renames it)"
            )
        if excludes and root.excludes != tuple(excludes):
            root = update_root(conn, root.name, excludes=excludes)
        if visibility is not None and visibility != root.visibility:
            root = update_root(conn, root.name, visibility=visibility)
        return Registered(root, notes)
    wanted = _clean_name(name or directory.name or "root")
    taken = {r[0] for r in conn.execute("SELECT name FROM doc_roots")}
    if name is not None and wanted in taken:
        raise InvalidInput(f"a root named {wanted!r} already exists; choose another name")
    final, n = wanted, 2
    while final in taken:
        final, n = f"{wanted}-{n}", n + 1
    visibility = check_visibility(visibility or "private", owner.project if owner else None)
    row = conn.execute(
        "INSERT INTO doc_roots (name, path, excludes, owner, project, visibility)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        (
            final,
            str(directory),
            json.dumps(list(excludes)),
            owner.user if owner else None,
            owner.project if owner else None,
            visibility if owner else "all",
        ),
    ).fetchone()
    return Registered(Root.from_row(row))


def list_roots(conn: driver.Connection, principal: Principal | None = None) -> list[Root]:
    """The roots ``principal`` may see (None: all of them)."""
    rows = conn.execute("SELECT * FROM doc_roots ORDER BY name").fetchall()
    return [root for root in map(Root.from_row, rows) if root.visible_to(principal)]


def get_root(conn: driver.Connection, name: str) -> Root:
    row = conn.execute("SELECT * FROM doc_roots WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no root named {name!r}")
    return Root.from_row(row)


def update_root(
    conn: driver.Connection,
    name: str,
    *,
    excludes: tuple[str, ...] | None = None,
    visibility: str | None = None,
    owner: str | None = None,
) -> Root:
    root = get_root(conn, name)
    if excludes is not None:
        conn.execute(
            "UPDATE doc_roots SET excludes = ? WHERE id = ?", (json.dumps(list(excludes)), root.id)
        )
    if owner is not None:
        conn.execute("UPDATE doc_roots SET owner = ? WHERE id = ?", (owner, root.id))
    if visibility is not None:
        check_visibility(visibility, root.project)
        conn.execute("UPDATE doc_roots SET visibility = ? WHERE id = ?", (visibility, root.id))
    return get_root(conn, name)


def rename_root(conn: driver.Connection, old: str, new: str) -> Root:
    """Rename a root; its documents' names (``<root>/<path>``) follow."""
    root = get_root(conn, old)
    cleaned = _clean_name(new)
    if cleaned != new:
        raise InvalidInput(f"a root name is letters, digits, '.', '_' and '-'; try {cleaned!r}")
    if conn.execute("SELECT 1 FROM doc_roots WHERE name = ?", (new,)).fetchone():
        raise InvalidInput(f"a root named {new!r} already exists")
    conn.execute("UPDATE doc_roots SET name = ? WHERE id = ?", (new, root.id))
    conn.execute(
        "UPDATE document_index SET file_path = ? || substr(file_path, ?) WHERE root_id = ?",
        (new + "/", len(old) + 2, root.id),
    )
    return get_root(conn, new)


def remove_root(conn: driver.Connection, name: str) -> int:
    """Forget a root and everything indexed from it; returns the documents removed."""
    root = get_root(conn, name)
    removed = conn.execute("DELETE FROM document_index WHERE root_id = ?", (root.id,)).rowcount
    conn.execute("DELETE FROM doc_roots WHERE id = ?", (root.id,))
    return removed


def _clean_name(name: str) -> str:
    cleaned = _NAME.sub("-", name).strip("-.") or "root"
    return cleaned[:64]
