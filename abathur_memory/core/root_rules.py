"""What registering and renaming a document root decides, written once for both stores
(store/sqlite/roots.py, store/postgres/roots.py read the rows and write what is decided
here, inside their transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from abathur_memory.core.documents import Root, check_visibility, clean_root_name
from abathur_memory.core.principal import Principal
from abathur_memory.errors import InvalidInput


@dataclass(frozen=True)
class RootChanges:
    """What registering a folder already indexed changes about its root."""

    excludes: tuple[str, ...] | None = None  # new excludes, if they differ
    visibility: str | None = None  # a new visibility, if it differs
    notes: list[str] = field(default_factory=list)  # what the user should know


def registered_again(
    root: Root,
    directory: Path,
    name: str | None,
    excludes: tuple[str, ...],
    visibility: str | None,
) -> RootChanges:
    """A folder is registered again: its root keeps its name (a different one asked for is
    a note), takes the excludes and visibility given, if any."""
    notes = []
    if name is not None and clean_root_name(name) != root.name:
        notes.append(
            f"{directory} is already indexed as {root.name!r}; the name {name!r} was not "
            f"used (`abathur-memory roots --rename {root.name} {name}` renames it)"
        )
    return RootChanges(
        excludes=tuple(excludes) if excludes and root.excludes != tuple(excludes) else None,
        visibility=visibility if visibility is not None and visibility != root.visibility else None,
        notes=notes,
    )


@dataclass(frozen=True)
class NewRoot:
    name: str
    owner: str | None
    project: str | None
    visibility: str


def new_root(
    directory: Path,
    name: str | None,
    taken: set[str],
    owner: Principal | None,
    visibility: str | None,
) -> NewRoot:
    """A new root's name (the one asked for, else the folder's, made unique with -2, -3...:
    a name asked for that is taken is an error) and who sees it (private to its owner by
    default; a root registered by no one, as the CLI does, is everyone's)."""
    wanted = clean_root_name(name or directory.name or "root")
    if name is not None and wanted in taken:
        raise InvalidInput(f"a root named {wanted!r} already exists; choose another name")
    final, n = wanted, 2
    while final in taken:
        final, n = f"{wanted}-{n}", n + 1
    checked = check_visibility(visibility or "private", owner.project if owner else None)
    return NewRoot(
        name=final,
        owner=owner.user if owner else None,
        project=owner.project if owner else None,
        visibility=checked if owner else "all",
    )


def new_name(new: str, taken: bool) -> str:
    """A rename's new name, already in the stored form (root_name_of: the store looks it up
    in that form), refused unless it is clean and free."""
    cleaned = clean_root_name(new)
    if cleaned != new:
        raise InvalidInput(
            f"a root name is letters and digits (of any script), '.', '_' and '-'; try {cleaned!r}"
        )
    if taken:
        raise InvalidInput(f"a root named {new!r} already exists")
    return new
