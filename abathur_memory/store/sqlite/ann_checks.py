"""The doctor's view of the saved approximate indexes (ann_files.py): does each match its table?

A saved index is derived data: one that does not match is not damage to the database, but it
must never be used, so the doctor fails it (``--repair`` deletes it; a server rebuilds it).
One saved at an older generation is a warning only: a server brings it up to date on start.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from abathur_memory.store.sqlite import ann, ann_files, driver
from abathur_memory.store.sqlite.checks import Check

NAME = "approximate index"
SAMPLE = 256  # vectors compared with the table, besides every id


def check(conn: driver.Connection, db_path: Path) -> list[Check]:
    saved = ann_files.saved(db_path)
    if not saved:
        return [Check(NAME, True, "none saved (a server builds one for large vector tables)")]
    return [_check_one(conn, path) for path in saved]


def mismatched(conn: driver.Connection, db_path: Path) -> list[Path]:
    """Saved indexes that do not match their tables or whose space is gone (what
    ``--repair`` deletes); stale ones are kept, a server updates them."""
    found = []
    for path in ann_files.saved(db_path):
        result = _check_one(conn, path)
        if not result.ok or "no longer has" in result.detail or "older version" in result.detail:
            found.append(path)
    return found


def _check_one(conn: driver.Connection, path: Path) -> Check:
    name = f"{NAME} {path.stem}"
    header = ann_files.read_stamp(path)
    if header is None and ann_files.older_format(path):
        return Check(
            name,
            True,
            "saved by an older version in another format (never used): the next server "
            "rebuilds it, doctor --repair deletes it",
            warning=True,
        )
    if header is None:
        return Check(name, False, f"{path} is unreadable: delete it (doctor --repair)")
    stamp, removed = header
    space = conn.execute(
        "SELECT created_at, generation FROM embedding_spaces WHERE id = ?", (stamp.space_id,)
    ).fetchone()
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (stamp.table,)
    ).fetchone()
    if space is None or not exists or space[0] != stamp.space_created:
        return Check(
            name,
            True,
            "left from a space this database no longer has (never used): doctor --repair or "
            "the next server deletes it",
            warning=True,
        )
    if space[1] != stamp.generation:
        return Check(
            name,
            True,
            f"saved at generation {stamp.generation}, the table is at {space[1]}: a server "
            "brings it up to date before using it",
            warning=True,
        )
    loaded = ann_files.load(path)
    if loaded is None:
        return Check(name, False, f"{path} is unreadable: delete it (doctor --repair)")
    _, _, index = loaded
    column = ann.id_column(None, stamp.table)
    ids = np.fromiter(
        (r[0] for r in conn.execute(f"SELECT {column} FROM {stamp.table}")), dtype=np.int64
    )
    faiss = ann_files.faiss_module()
    held = faiss.vector_to_array(index.id_map).astype(np.int64)
    live = np.setdiff1d(held, np.array(removed, dtype=np.int64))
    if ann_files.digest(live) != ann_files.digest(ids) or stamp.digest != ann_files.digest(ids):
        missing = len(np.setdiff1d(ids, live))
        extra = len(np.setdiff1d(live, ids))
        return Check(
            name,
            False,
            f"does not hold the table's vectors ({missing} missing, {extra} not in the "
            "table): delete it (--repair)",
        )
    picks = np.random.default_rng().choice(ids, size=min(SAMPLE, len(ids)), replace=False)
    if not ann.vectors_match(conn, index, stamp.table, column, stamp.dim, picks):
        return Check(name, False, "its vectors differ from the table's: delete it (--repair)")
    return Check(name, True, f"matches the table ({len(ids)} vectors, generation {space[1]})")
