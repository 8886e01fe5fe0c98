"""The document service: roots, indexing runs, search, reading files back, status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel

from abathur_memory.errors import Forbidden, InvalidInput, NotFound
from abathur_memory.indexer import roots as roots_mod
from abathur_memory.indexer import safe_files, spaces, sync
from abathur_memory.indexer.embedders.base import Embedder
from abathur_memory.indexer.liveness import pid_alive
from abathur_memory.indexer.roots import Root
from abathur_memory.indexer.scan import is_markdown
from abathur_memory.indexer.search import Filters, SearchEngine, SearchResult
from abathur_memory.indexer.vector_index import VectorIndex
from abathur_memory.indexer.worker import IndexWorker, Progress, ProgressCallback
from abathur_memory.memory.namespaces import Principal
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite import queries as hot_queries
from abathur_memory.store.sqlite.database import Database

MAX_DOCUMENT_LINES = 5000
HEARTBEAT_STALE_S = 120


@dataclass
class IndexReport:
    scans: list[sync.ScanReport] = field(default_factory=list)
    work: Progress | None = None
    # After the run, over the roots it covered: what `status` will say too.
    failed: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scans": [s.as_dict() for s in self.scans],
            "work": self.work.as_dict() if self.work else None,
            "failed_count": len(self.failed),
            "failed": self.failed[:50],
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
        # Called with (principal, action, target, rule) when a hidden root is asked for.
        self.on_denied: Callable[[Principal, str, str, str], None] | None = None

    # -- roots ----------------------------------------------------------------------------

    async def add_root(
        self,
        spec: str | Path,
        excludes: tuple[str, ...] = (),
        *,
        owner: Principal | None = None,
        visibility: str | None = None,
    ) -> roots_mod.Registered:
        """Register ``DIR`` or ``NAME=DIR`` for ``owner`` (idempotent)."""
        name, directory = roots_mod.parse_root_spec(str(spec))
        path = roots_mod.resolve_root_dir(directory)
        return await self.db.write(
            roots_mod.ensure_root, path, name, excludes, owner=owner, visibility=visibility
        )

    async def roots(self, principal: Principal | None = None) -> list[Root]:
        """The roots ``principal`` may see (None: every root, for the operator's commands)."""
        return await self.db.read(roots_mod.list_roots, principal)

    async def remove_root(self, name: str) -> int:
        return await self.db.write(roots_mod.remove_root, name)

    async def rename_root(self, old: str, new: str) -> Root:
        return await self.db.write(roots_mod.rename_root, old, new)

    async def update_root(
        self,
        name: str,
        *,
        excludes: tuple[str, ...] | None = None,
        visibility: str | None = None,
        owner: str | None = None,
    ) -> Root:
        return await self.db.write(
            roots_mod.update_root, name, excludes=excludes, visibility=visibility, owner=owner
        )

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
            report.work = await worker.run(progress, roots=[r.id for r in only] if only else None)
            report.failed = await self.db.read(_failures, [r.id for r in only] if only else None)
            return report

    async def refresh(self, principal: Principal | None, path: str | None = None) -> IndexReport:
        """Re-scan and index every visible root, one root (``path`` = its name) or exactly one
        document (``root/file.md``; a file that has gone leaves the index and is reported)."""
        visible = await self.roots(principal)
        if path is None:
            if not visible:
                return IndexReport()
            return await self.index(visible)
        by_name = {r.name: r for r in visible}
        name, _, rest = _split_document_path(path)
        root = by_name.get(name)
        if root is None:
            await self._deny_hidden_root(principal, name, "refresh")
            raise NotFound(f"no root named {name!r}; roots: {', '.join(by_name) or '(none)'}")
        if not rest:
            return await self.index([root])
        relative = _safe_relative(rest)
        async with self._index_lock:
            worker = self.worker()
            await worker.target_space()
            scanned = await sync.scan_file(
                self.db, root, relative.as_posix(), max_file_bytes=self.max_file_bytes
            )
            report = IndexReport(scans=[scanned])
            report.work = await worker.run(documents=scanned.document_ids)
            return report

    async def _deny_hidden_root(self, principal: Principal | None, name: str, action: str) -> None:
        """A root that exists but is not visible is answered as missing, and audited."""
        if self.on_denied is None or principal is None:
            return
        exists = await self.db.fetchone("SELECT 1 FROM doc_roots WHERE name = ?", (name,))
        if exists is not None:
            self.on_denied(
                principal,
                action,
                f"root:{name}",
                "document roots are private to their owner unless shared",
            )

    # -- reading --------------------------------------------------------------------------

    async def search(
        self,
        principal: Principal | None,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        filters: Filters | None = None,
    ) -> SearchResult:
        """Search the roots ``principal`` may see (None: all)."""
        filters = filters or Filters()
        if filters.root is not None:
            await self._visible_root(principal, filters.root, "search")
        return await self.engine.search(query, k, mode, filters, principal=principal)

    async def _visible_root(self, principal: Principal | None, name: str, action: str) -> Root:
        visible = {r.name: r for r in await self.roots(principal)}
        root = visible.get(name)
        if root is None:
            await self._deny_hidden_root(principal, name, action)
            raise InvalidInput(f"no root named {name!r}; roots: {', '.join(visible) or '(none)'}")
        return root

    async def get(
        self,
        principal: Principal | None,
        path: str,
        start_line: int | None = None,
        end_line: int | None = None,
    ) -> DocumentText:
        """A document (or a line range of it) read from disk: only documents the index holds,
        in roots ``principal`` may see, opened without following any symbolic link."""
        if not isinstance(path, str) or not path.strip():
            raise InvalidInput("path must be '<root>/<path within the root>', e.g. notes/todo.md")
        if start_line is not None and start_line < 1:
            raise InvalidInput("start_line must be >= 1")
        if end_line is not None and start_line is not None and end_line < start_line:
            raise InvalidInput("end_line must be >= start_line")
        name, _, rest = _split_document_path(path)
        visible = {r.name: r for r in await self.roots(principal)}
        root = visible.get(name)
        if root is None or not rest:
            if root is None:
                await self._deny_hidden_root(principal, name, "read")
            raise NotFound(
                f"no document {path!r}: paths look like '<root>/<file>', roots: "
                f"{', '.join(visible) or '(none indexed)'}"
            )
        relative = _safe_relative(rest).as_posix()
        if not is_markdown(relative):
            raise Forbidden("only markdown documents (.md, .markdown) can be read")
        document = f"{root.name}/{relative}"
        row = await self.db.fetchone(hot_queries.DOCUMENT_BY_PATH, {"file_path": document})
        if row is None:
            # What the index does not hold (excluded, ignored, under .git) is not readable.
            raise NotFound(f"no document {document} in the index")
        data, info = await asyncio.to_thread(
            safe_files.read_in_root, root.path, relative, max_bytes=self.max_file_bytes
        )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput(f"{document} is not UTF-8 text") from None
        lines = text.splitlines()
        total = len(lines)
        first = start_line or 1
        last = min(end_line or total, total)
        if total and first > total:
            raise InvalidInput(f"{path} has {total} lines; start_line {first} is past the end")
        if last - first + 1 > MAX_DOCUMENT_LINES:
            last = first + MAX_DOCUMENT_LINES - 1
        changed = (info.st_size, info.st_mtime_ns) != (row["size_bytes"], row["mtime_ns"])
        return DocumentText(
            path=document,
            root=root.name,
            title=row["title"],
            start_line=first,
            end_line=last,
            total_lines=total,
            text="\n".join(lines[first - 1 : last]),
            changed_since_indexed=changed,
        )

    # -- status ---------------------------------------------------------------------------

    async def status(self, principal: Principal | None = None) -> dict[str, Any]:
        """The index as ``principal`` may see it: only visible roots, and a root's folder
        path only for its owner (and admins)."""
        return await self.db.read(_status, self.embedder, principal)


def _failures(conn: driver.Connection, root_ids: list[int] | None) -> list[dict[str, Any]]:
    """Every failed document of these roots (all roots: None), newest first."""
    where = "" if root_ids is None else f" AND root_id IN ({','.join('?' * len(root_ids))})"
    return [
        {"path": r["file_path"], "error": json.loads(r["metadata"] or "{}").get("error")}
        for r in conn.execute(
            f"SELECT file_path, metadata FROM document_index WHERE sync_status = 'failed'{where}"
            " ORDER BY updated_at DESC",
            root_ids or [],
        )
    ]


def _split_document_path(path: str) -> tuple[str, str, str]:
    """'<root>/<rest>' into (root, '/', rest); absolute paths are refused first."""
    if "\x00" in path:
        raise InvalidInput("a document path cannot contain a NUL character")
    cleaned = path.replace("\\", "/")
    if cleaned.startswith("/") or PurePosixPath(cleaned).is_absolute() or Path(path).is_absolute():
        raise Forbidden("absolute paths are not allowed: give '<root>/<path within the root>'")
    return cleaned.partition("/")


def _safe_relative(rest: str) -> PurePosixPath:
    if "\x00" in rest:
        raise InvalidInput("a document path cannot contain a NUL character")
    if rest.startswith("/") or PurePosixPath(rest).is_absolute():
        raise Forbidden("absolute paths are not allowed: give '<root>/<path within the root>'")
    relative = PurePosixPath(rest)
    if any(part == ".." for part in relative.parts):
        raise Forbidden("'..' is not allowed in document paths")
    if any(len(part.encode("utf-8")) > 255 for part in relative.parts):
        raise InvalidInput("a name in the document path is longer than 255 bytes")
    return relative


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


def _status(
    conn: driver.Connection, embedder: Embedder | None, principal: Principal | None
) -> dict[str, Any]:
    active = spaces.active_space(conn)
    building = spaces.building_space(conn)
    visible = roots_mod.list_roots(conn, principal)
    ids = [root.id for root in visible]
    marks = ",".join("?" for _ in ids) or "NULL"
    roots = []
    for root in visible:
        counts = dict(
            conn.execute(
                "SELECT sync_status, count(*) FROM document_index WHERE root_id = ?"
                " GROUP BY sync_status",
                (root.id,),
            ).fetchall()
        )
        mine = root.owned_by(principal)
        roots.append(
            {
                "name": root.name,
                "path": str(root.path) if mine else None,
                "exists": root.path.is_dir(),
                "owner": root.owner,
                "visibility": root.visibility,
                "excludes": list(root.excludes),
                "documents": sum(counts.values()),
                "by_status": {
                    s: counts.get(s, 0) for s in ("pending", "synced", "stale", "failed")
                },
                "last_scan_at": timestamps.to_iso(root.last_scan_at),
            }
        )
    pending = conn.execute(
        "SELECT count(*), min(updated_at) FROM document_index"
        f" WHERE sync_status IN ('pending', 'stale') AND root_id IN ({marks})",
        ids,
    ).fetchone()
    failures = [
        {"path": r["file_path"], "error": json.loads(r["metadata"] or "{}").get("error")}
        for r in conn.execute(
            "SELECT file_path, metadata FROM document_index WHERE sync_status = 'failed'"
            f" AND root_id IN ({marks}) ORDER BY updated_at DESC LIMIT 20",
            ids,
        )
    ]
    failed_total = conn.execute(
        "SELECT count(*) FROM document_index WHERE sync_status = 'failed'"
        f" AND root_id IN ({marks})",
        ids,
    ).fetchone()[0]
    last_sync = conn.execute(
        f"SELECT max(last_synced_at) FROM document_index WHERE root_id IN ({marks})", ids
    ).fetchone()[0]
    chunks = 0
    if active is not None:
        chunks = conn.execute(
            f"SELECT count(*) FROM {active.chunks} AS c JOIN document_index AS d"
            f" ON d.id = c.document_id WHERE d.root_id IN ({marks})",
            ids,
        ).fetchone()[0]
    rebuild = None
    if building is not None:
        done = conn.execute(
            "SELECT count(*) FROM space_documents AS sd JOIN document_index AS d"
            f" ON d.id = sd.document_id WHERE sd.space_id = ? AND d.root_id IN ({marks})",
            [building.id, *ids],
        ).fetchone()[0]
        total = conn.execute(
            f"SELECT count(*) FROM document_index WHERE root_id IN ({marks})", ids
        ).fetchone()[0]
        rebuild = {"model": building.identity.model_id, "documents_done": done, "documents": total}
    names = {root.name for root in visible}
    return {
        "roots": roots,
        "model": active.identity.model_id if active else None,
        "dimensions": active.dim if active else None,
        "configured_model": embedder.model_id if embedder else None,
        "chunks": chunks,
        "pending": pending[0],
        "oldest_pending_since": timestamps.to_iso(pending[1]),
        "failed_count": failed_total,
        "failed": failures,
        "last_sync_at": timestamps.to_iso(last_sync),
        "rebuild": rebuild,
        "watchers": [
            w
            for w in _watchers(conn)
            if principal is None or principal.admin or set(w["roots"]) & names
        ],
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
