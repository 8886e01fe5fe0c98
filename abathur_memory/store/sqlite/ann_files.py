"""The approximate vector index on disk: one file per vector table, beside the database.

``<db>-ann/<table>.faiss`` starts with a header line (:data:`MAGIC`), then one JSON line saying
what the index reflects (:class:`Stamp`: the space, its generation, how many vectors and which
ids), then the faiss index. It is a cache of the database, never a second source of truth: it
is written atomically (a temporary file renamed over the old one), used only once checked
against the table (ann.py), and may be deleted at any time (restore, migrate and
``doctor --repair`` do).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

MAGIC = b"abathur-ann 2\n"  # 2: an IVF index
OLDER = (b"abathur-ann 1\n",)  # 1: an HNSW graph; rebuilt, never read
SUFFIX = ".faiss"


@dataclass(frozen=True)
class Stamp:
    """The state of one vector table an index was built from."""

    space_id: int
    space_created: str  # with the id, tells this database's space from another's
    table: str
    dim: int
    generation: int  # embedding_spaces.generation when the index was last brought up to date
    count: int  # live vectors in the index (= rows of the table)
    max_id: int
    digest: str  # sha256 of the sorted live ids

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stamp:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def faiss_module() -> Any:
    """faiss, imported on first use (commands that never search large tables skip it); typed
    loosely, its SWIG bindings are only partly annotated."""
    import faiss

    return faiss


def digest(ids: npt.NDArray[np.int64]) -> str:
    """A fingerprint of a set of ids (order does not matter)."""
    return hashlib.sha256(np.sort(ids).astype("<i8").tobytes()).hexdigest()


def directory(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + "-ann")


def path_for(db_path: Path, table: str) -> Path:
    return directory(db_path) / f"{table}{SUFFIX}"


def saved(db_path: Path) -> list[Path]:
    folder = directory(db_path)
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def save(db_path: Path, stamp: Stamp, removed: list[int], index: Any) -> Path:
    """Write the index of ``stamp.table`` atomically; ``removed`` are ids the index still
    holds but the table no longer does (skipped at search time)."""
    faiss = faiss_module()
    target = path_for(db_path, stamp.table)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{stamp.table}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC)
            header = {"stamp": stamp.as_json(), "removed": removed}
            fh.write(json.dumps(header).encode() + b"\n")
            faiss.write_index(index, faiss.PyCallbackIOWriter(fh.write))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def read_stamp(path: Path) -> tuple[Stamp, list[int]] | None:
    """The header of a saved index, or None if the file is not one (or is damaged)."""
    try:
        with path.open("rb") as fh:
            return _header(fh)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def older_format(path: Path) -> bool:
    """Whether ``path`` is an index an older version saved (a server rebuilds it)."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(MAGIC)) in OLDER
    except OSError:
        return False


def load(path: Path) -> tuple[Stamp, list[int], Any] | None:
    """A saved index with its header, or None if it is missing or unreadable."""
    faiss = faiss_module()
    try:
        with path.open("rb") as fh:
            header = _header(fh)
            if header is None:
                return None
            index = faiss.read_index(faiss.PyCallbackIOReader(fh.read))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        log.warning("ignoring the unreadable approximate index %s: %s", path, exc)
        return None
    return header[0], header[1], index


def _header(fh: Any) -> tuple[Stamp, list[int]] | None:
    if fh.read(len(MAGIC)) != MAGIC:
        return None
    data = json.loads(fh.readline())
    return Stamp.from_json(data["stamp"]), [int(i) for i in data["removed"]]


def discard(db_path: Path) -> bool:
    """Remove the saved indexes of ``db_path`` (they are rebuilt from the database)."""
    folder = directory(db_path)
    if not folder.exists():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def discard_one(db_path: Path, table: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        path_for(db_path, table).unlink()
