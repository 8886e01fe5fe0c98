"""The document service: roots, indexing runs, search, reading files back, status."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel

from abathur_memory.errors import Forbidden, InvalidInput, NotFound
from abathur_memory.indexer import roots as roots_mod
from abathur_memory.indexer import spaces, sync
from abathur_memory.indexer.embedders.base import Embedder
from abathur_memory.indexer.liveness import pid_alive
from abathur_memory.indexer.roots import Root
from abathur_memory.indexer.scan import is_markdown
from abathur_memory.indexer.search import Filters, SearchEngine, SearchResult
from abathur_memory.indexer.vector_index import VectorIndex
from abathur_memory.indexer.worker import IndexWorker, Progress, ProgressCallback
from abathur_memory.schema import hot_queries
from abathur_memory.storage import driver, timestamps
from abathur_memory.storage.database import Database

MAX_DOCUMENT_LINES = 5000
HEARTBEAT_STALE_S = 120


@dataclass
class IndexReport:
    scans: list[sync.ScanReport] = field(default_factory=list)
    work: Progress | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "scans": [s.as_dict() for s in self.scans],
            "work": self.work.as_dict() if self.work else None,
        }


class DocumentText(BaseModel):
    """A document, or a line range of it, read from disk."""

    path: str
    root: str
    title: str
    start_line: int
    end_line: int
    total_lines: int
    text: str
    changed_since_indexed: bool


class DocumentService:
    def __init__(
        self,
        db: Database,
        embedder: Embedder | None,
        *,
        max_file_bytes: int = 10 * 1024 * 1024,
        worker_owner: str | None = None,
        cache: VectorIndex | None = None,
    ) -> None:
        self.db = db
        self.embedder = embedder
        self.max_file_bytes = max_file_bytes
        self.cache = cache or VectorIndex()
        self.engine = SearchEngine(db, embedder, self.cache)
        self._worker_owner = worker_owner
        self._index_lock = asyncio.Lock()

    # -- roots ----------------------------------------------------------------------------

    async def add_root(self, spec: str | Path, excludes: tuple[str, ...] = ()) -> Root:
        """Register ``DIR`` or ``NAME=DIR`` (idempotent)."""
        name, directory = roots_mod.parse_root_spec(str(spec))
        path = roots_mod.resolve_root_dir(directory)
        return await self.db.write(roots_mod.ensure_root, path, name, excludes)

    async def roots(self) -> list[Root]:
        return await self.db.read(roots_mod.list_roots)

    async def remove_root(self, name: str) -> int:
        return await self.db.write(roots_mod.remove_root, name)

    # -- indexing -------------------------------------------------------------------------

    def worker(self) -> IndexWorker:
        if self.embedder is None:
            raise InvalidInput("no embedding model is configured; indexing needs one")
        return IndexWorker(
            self.db, self.embedder, max_file_bytes=self.max_file_bytes, owner=self._worker_owner
        )

    async def scan(self, only: list[Root] | None = None) -> list[sync.ScanReport]:
        reports = []
        for root in only or await self.roots():
            reports.append(await sync.scan_root(self.db, root, max_file_bytes=self.max_file_bytes))
        return reports

    async def index(
        self,
        only: list[Root] | None = None,
        *,
        full: bool = False,
        progress: ProgressCallback | None = None,
        scan_first: bool = True,
    ) -> IndexReport:
        """Scan the roots, then embed everything that changed (all of it with ``full``)."""
        async with self._index_lock:
            worker = self.worker()
            space = await worker.target_space()
            report = IndexReport()
            if scan_first:
                report.scans = await self.scan(only)
            if full:
                await self.db.write(_forget_space_documents, space, only)
            report.work = await worker.run(progress)
            return report

    async def refresh(self, path: str | None = None) -> IndexReport:
        """Re-scan one root (``path`` = its name), one document (``root/file.md``) or all."""
        if path is None:
            return await self.index()
        all_roots = await self.roots()
        by_name = {r.name: r for r in all_roots}
        name, _, rest = path.strip("/").partition("/")
        if name not in by_name:
            raise NotFound(f"no root named {name!r}; roots: {', '.join(by_name) or '(none)'}")
        if rest:
            _safe_relative(rest)
        return await self.index([by_name[name]])

    # -- reading --------------------------------------------------------------------------

    async def search(
        self, query: str, k: int = 10, mode: str = "hybrid", filters: Filters | None = None
    ) -> SearchResult:
        return await self.engine.search(query, k, mode, filters)

    async def get(
        self, path: str, start_line: int | None = None, end_line: int | None = None
    ) -> DocumentText:
        """A document (or a line range of it) read from disk, only inside an indexed root."""
        if not isinstance(path, str) or not path.strip():
            raise InvalidInput("path must be '<root>/<path within the root>', e.g. notes/todo.md")
        if start_line is not None and start_line < 1:
            raise InvalidInput("start_line must be >= 1")
        if end_line is not None and start_line is not None and end_line < start_line:
            raise InvalidInput("end_line must be >= start_line")
        all_roots = {r.name: r for r in await self.roots()}
        name, _, rest = path.replace("\\", "/").partition("/")
        if PurePosixPath(path).is_absolute() or Path(path).is_absolute():
            raise Forbidden("absolute paths are not allowed: give '<root>/<path within the root>'")
        root = all_roots.get(name)
        if root is None or not rest:
            raise NotFound(
                f"no document {path!r}: paths look like '<root>/<file>', roots: "
                f"{', '.join(all_roots) or '(none indexed)'}"
            )
        file = _inside(root, rest)
        if not is_markdown(file.name):
            raise Forbidden("only markdown documents (.md, .markdown) can be read")
        text = await asyncio.to_thread(self._read, file)
        lines = text.splitlines()
        total = len(lines)
        first = start_line or 1
        last = min(end_line or total, total)
        if total and first > total:
            raise InvalidInput(f"{path} has {total} lines; start_line {first} is past the end")
        if last - first + 1 > MAX_DOCUMENT_LINES:
            last = first + MAX_DOCUMENT_LINES - 1
        row = await self.db.fetchone(
            hot_queries.DOCUMENT_BY_PATH, {"file_path": f"{root.name}/{rest}"}
        )
        changed = True
        if row is not None:
            info = await asyncio.to_thread(file.stat)
            changed = (info.st_size, info.st_mtime_ns) != (row["size_bytes"], row["mtime_ns"])
        return DocumentText(
            path=f"{root.name}/{rest}",
            root=root.name,
            title=row["title"] if row is not None else file.stem,
            start_line=first,
            end_line=last,
            total_lines=total,
            text="\n".join(lines[first - 1 : last]),
            changed_since_indexed=changed,
        )

    def _read(self, file: Path) -> str:
        try:
            if file.stat().st_size > self.max_file_bytes:
                raise InvalidInput(f"{file.name} is larger than {self.max_file_bytes:,} bytes")
            data = file.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{file.name} does not exist (any more)") from None
        except IsADirectoryError:
            raise InvalidInput(f"{file.name} is a folder, not a document") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read {file.name}: {exc.strerror}") from None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput(f"{file.name} is not UTF-8 text") from None

    # -- status ---------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await self.db.read(_status, self.embedder)


def _safe_relative(rest: str) -> PurePosixPath:
    relative = PurePosixPath(rest)
    if relative.is_absolute() or any(part == ".." for part in relative.parts):
        raise Forbidden("'..' is not allowed in document paths")
    return relative


def _inside(root: Root, rest: str) -> Path:
    """The file for ``rest`` under ``root``; Forbidden if it (or a link) leads outside."""
    relative = _safe_relative(rest)
    candidate = root.path.joinpath(*relative.parts)
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError):  # RuntimeError: symlink loop on older Pythons
        raise Forbidden(f"{rest} cannot be resolved (symbolic link loop?)") from None
    root_real = root.path.resolve()
    if resolved != root_real and root_real not in resolved.parents:
        raise Forbidden(f"{rest} leads outside the root {root.name} (symbolic link)")
    if not resolved.exists():
        raise NotFound(f"no document {root.name}/{rest}")
    return resolved


def _forget_space_documents(
    conn: driver.Connection, space: spaces.Space, only: list[Root] | None
) -> None:
    if only:
        ids = [r.id for r in only]
        marks = ",".join("?" for _ in ids)
        conn.execute(
            "DELETE FROM space_documents WHERE space_id = ? AND document_id IN"
            f" (SELECT id FROM document_index WHERE root_id IN ({marks}))",
            [space.id, *ids],
        )
        conn.execute(
            "UPDATE document_index SET sync_status = 'stale', attempts = 0, next_attempt_at = NULL"
            f" WHERE root_id IN ({marks}) AND sync_status != 'pending'",
            ids,
        )
    else:
        conn.execute("DELETE FROM space_documents WHERE space_id = ?", (space.id,))
        conn.execute(
            "UPDATE document_index SET sync_status = 'stale', attempts = 0, next_attempt_at = NULL"
            " WHERE root_id IS NOT NULL AND sync_status != 'pending'"
        )


def _status(conn: driver.Connection, embedder: Embedder | None) -> dict[str, Any]:
    active = spaces.active_space(conn)
    building = spaces.building_space(conn)
    roots = []
    for root in roots_mod.list_roots(conn):
        counts = dict(
            conn.execute(
                "SELECT sync_status, count(*) FROM document_index WHERE root_id = ?"
                " GROUP BY sync_status",
                (root.id,),
            ).fetchall()
        )
        roots.append(
            {
                "name": root.name,
                "path": str(root.path),
                "exists": root.path.is_dir(),
                "documents": sum(counts.values()),
                "by_status": {
                    s: counts.get(s, 0) for s in ("pending", "synced", "stale", "failed")
                },
                "last_scan_at": timestamps.to_iso(root.last_scan_at),
            }
        )
    pending = conn.execute(
        "SELECT count(*), min(updated_at) FROM document_index"
        " WHERE sync_status IN ('pending', 'stale')"
    ).fetchone()
    failures = [
        {"path": r["file_path"], "error": json.loads(r["metadata"] or "{}").get("error")}
        for r in conn.execute(
            "SELECT file_path, metadata FROM document_index WHERE sync_status = 'failed'"
            " ORDER BY updated_at DESC LIMIT 20"
        )
    ]
    last_sync = conn.execute("SELECT max(last_synced_at) FROM document_index").fetchone()[0]
    chunks = conn.execute(f"SELECT count(*) FROM {active.chunks}").fetchone()[0] if active else 0
    rebuild = None
    if building is not None:
        done = conn.execute(
            "SELECT count(*) FROM space_documents WHERE space_id = ?", (building.id,)
        ).fetchone()[0]
        total = conn.execute(
            "SELECT count(*) FROM document_index WHERE root_id IS NOT NULL"
        ).fetchone()[0]
        rebuild = {"model": building.identity.model_id, "documents_done": done, "documents": total}
    return {
        "roots": roots,
        "model": active.identity.model_id if active else None,
        "dimensions": active.dim if active else None,
        "configured_model": embedder.model_id if embedder else None,
        "chunks": chunks,
        "pending": pending[0],
        "oldest_pending_since": timestamps.to_iso(pending[1]),
        "failed": failures,
        "last_sync_at": timestamps.to_iso(last_sync),
        "rebuild": rebuild,
        "watchers": _watchers(conn),
    }


def _watchers(conn: driver.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT *, (julianday('now') - julianday(beat_at)) * 86400 AS silent_s"
        " FROM indexer_heartbeats ORDER BY beat_at DESC"
    ).fetchall()
    watchers = []
    for row in rows:
        alive = row["silent_s"] < HEARTBEAT_STALE_S and pid_alive(row["pid"], row["host"])
        watchers.append(
            {
                "owner": row["owner"],
                "kind": row["kind"],
                "pid": row["pid"],
                "roots": json.loads(row["roots"]),
                "alive": alive,
                "last_beat_at": timestamps.to_iso(row["beat_at"]),
                "seconds_since_beat": round(row["silent_s"], 1),
                "last_event_at": timestamps.to_iso(row["last_event_at"]),
                "last_indexed_at": timestamps.to_iso(row["last_indexed_at"]),
            }
        )
    return watchers
