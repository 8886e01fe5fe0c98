"""The document service: roots, indexing runs, search, reading files back, status.

Who may see which root is decided here (a root hidden from a principal is answered as
missing, and audited); the store keeps the rows, the retrieval pipeline ranks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from abathur_memory.core.documents import Registered, Root, root_name_of
from abathur_memory.core.principal import Principal
from abathur_memory.core.replies import DEFAULT_BOUNDS, Bounds, cut_text, fitting, json_size
from abathur_memory.core.search import DocumentScope
from abathur_memory.core.spaces import Space
from abathur_memory.documents import roots as roots_mod
from abathur_memory.documents import safe_files, sync
from abathur_memory.documents.liveness import pid_alive
from abathur_memory.documents.reads import Reads
from abathur_memory.documents.reports import (
    DocumentText,
    Failure,
    IndexReport,
    IndexStatus,
    Rebuild,
    RootStatus,
    WatcherStatus,
)
from abathur_memory.documents.scan import is_markdown
from abathur_memory.documents.worker import IndexWorker, ProgressCallback
from abathur_memory.embedders.base import Embedder
from abathur_memory.errors import Forbidden, InvalidInput, NotFound
from abathur_memory.search.paths import path_matcher
from abathur_memory.search.pipeline import Retrieval
from abathur_memory.search.results import Filters, SearchResult
from abathur_memory.store.protocols import Store

MAX_DOCUMENT_LINES = 5000
HEARTBEAT_STALE_S = 120
REPORTED_FAILURES = 50

DeniedCallback = Callable[[Principal, str, str, str], None]


class DocumentService:
    def __init__(
        self,
        store: Store,
        embedder: Embedder | None,
        retrieval: Retrieval,
        *,
        max_file_bytes: int = 10 * 1024 * 1024,
        worker_owner: str | None = None,
        bounds: Bounds = DEFAULT_BOUNDS,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.retrieval = retrieval
        self.max_file_bytes = max_file_bytes
        self.bounds = bounds
        self._worker_owner = worker_owner
        self._index_lock = asyncio.Lock()
        # Called with (principal, action, target, rule) when a hidden root is asked for.
        self.on_denied: DeniedCallback | None = None

    # -- roots ----------------------------------------------------------------------------

    async def add_root(
        self,
        spec: str | Path,
        excludes: tuple[str, ...] = (),
        *,
        owner: Principal | None = None,
        visibility: str | None = None,
    ) -> Registered:
        """Register ``DIR`` or ``NAME=DIR`` for ``owner`` (idempotent)."""
        name, directory = roots_mod.parse_root_spec(str(spec))
        path = roots_mod.resolve_root_dir(directory)
        return await self.store.roots.ensure(path, name, tuple(excludes), owner, visibility)

    async def roots(self, principal: Principal | None = None) -> list[Root]:
        """The roots ``principal`` may see (None: every root, for the operator's commands)."""
        return [root for root in await self.store.roots.all() if root.visible_to(principal)]

    async def remove_root(self, name: str) -> int:
        return await self.store.roots.remove(root_name_of(name))

    async def rename_root(self, old: str, new: str) -> Root:
        return await self.store.roots.rename(root_name_of(old), new)

    async def update_root(
        self,
        name: str,
        *,
        excludes: tuple[str, ...] | None = None,
        visibility: str | None = None,
        owner: str | None = None,
    ) -> Root:
        return await self.store.roots.update(
            root_name_of(name), excludes=excludes, visibility=visibility, owner=owner
        )

    # -- indexing -------------------------------------------------------------------------

    def worker(self) -> IndexWorker:
        if self.embedder is None:
            raise InvalidInput("no embedding model is configured; indexing needs one")
        return IndexWorker(
            self.store, self.embedder, max_file_bytes=self.max_file_bytes, owner=self._worker_owner
        )

    async def scan(
        self, only: list[Root] | None = None, *, reads: Reads | None = None
    ) -> list[sync.ScanReport]:
        reports = []
        for root in only or await self.roots():
            reports.append(
                await sync.scan_root(
                    self.store.documents, root, max_file_bytes=self.max_file_bytes, reads=reads
                )
            )
        return reports

    async def index(
        self,
        only: list[Root] | None = None,
        *,
        full: bool = False,
        progress: ProgressCallback | None = None,
        scan_first: bool = True,
    ) -> IndexReport:
        """Scan the roots, then embed everything that changed (all of it with ``full``).

        One run resolves the embedding space once and reads each changed file once: the
        scan's bytes go to the worker (documents/reads.py)."""
        async with self._index_lock:
            worker = self.worker()
            space = await worker.target_space()
            report = IndexReport()
            reads = Reads()
            if scan_first:
                report.scans = await self.scan(only, reads=reads)
            root_ids = [r.id for r in only] if only else None
            if full:
                await self.store.documents.forget_space(space, root_ids)
            work = await worker.run(progress, roots=root_ids, space=space, reads=reads)
            report.work = work.report()
            failures = await self.store.documents.failures(root_ids)
            report.failed_count = len(failures)
            report.failed = [self._failure(f.path, f.error) for f in failures][:REPORTED_FAILURES]
            return report

    async def index_files(self, root: Root, relative_paths: Sequence[str]) -> IndexReport:
        """Bring the named files of ``root`` in line with the disk (new, changed or gone)
        and embed what changed, without walking the root: the watcher's way for a few
        changed files. A path that is neither indexed nor indexable (a temporary file that
        came and went, an excluded one) is skipped.

        The files are scanned together (one transaction; a rename named by both its paths
        is a move) and each is read once; a saved file costs three write transactions: the
        scan, the claim and the chunks (one per model call when it has more than 16 new
        chunks)."""
        async with self._index_lock:
            worker = self.worker()
            space = await worker.target_space()
            reads = Reads()
            scanned, _ = await sync.scan_files(
                self.store.documents,
                root,
                relative_paths,
                max_file_bytes=self.max_file_bytes,
                reads=reads,
            )
            report = IndexReport(scans=[scanned])
            if scanned.document_ids:
                work = await worker.run(documents=scanned.document_ids, space=space, reads=reads)
                report.work = work.report()
            return report

    async def refresh(self, principal: Principal | None, path: str | None = None) -> IndexReport:
        """Re-scan and index every visible root, one root (``path`` = its name) or exactly one
        document (``root/file.md``; a file that has gone leaves the index and is reported)."""
        visible = await self.roots(principal)
        if path is None:
            if not visible:
                return IndexReport()
            return self._bounded(await self.index(visible))
        by_name = {r.name: r for r in visible}
        name, _, rest = _split_document_path(path)
        root = by_name.get(name)
        if root is None:
            await self._deny_hidden_root(principal, name, "refresh")
            raise NotFound(f"no root named {name!r}; roots: {', '.join(by_name) or '(none)'}")
        if not rest:
            return self._bounded(await self.index([root]))
        relative = _safe_relative(rest)
        async with self._index_lock:
            worker = self.worker()
            space = await worker.target_space()
            reads = Reads()
            scanned = await sync.scan_file(
                self.store.documents,
                root,
                relative.as_posix(),
                max_file_bytes=self.max_file_bytes,
                reads=reads,
            )
            work = await worker.run(documents=scanned.document_ids, space=space, reads=reads)
            return IndexReport(scans=[scanned], work=work.report())

    async def _deny_hidden_root(self, principal: Principal | None, name: str, action: str) -> None:
        """A root that exists but is not visible is answered as missing, and audited."""
        if self.on_denied is None or principal is None:
            return
        if await self.store.roots.exists(name):
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
        every = await self.store.roots.all()
        visible = [root for root in every if root.visible_to(principal)]
        root_ids: tuple[int, ...] | None = None
        if len(visible) < len(every):
            root_ids = tuple(root.id for root in visible)
        if filters.root is not None:
            wanted = root_name_of(filters.root)
            root = next((r for r in visible if r.name == wanted), None)
            if root is None:
                await self._deny_hidden_root(principal, filters.root, "search")
                names = ", ".join(r.name for r in visible) or "(none)"
                raise InvalidInput(f"no root named {filters.root!r}; roots: {names}")
            root_ids = (root.id,)
        scope = DocumentScope(
            root_ids=root_ids,
            path_matches=path_matcher(filters.path_glob) if filters.path_glob else None,
            tags=tuple(tag.lower() for tag in filters.tags),
            document_type=filters.document_type or None,
        )
        return await self.retrieval.documents(query, k, mode, scope)

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
        indexed = await self.store.documents.indexed_file(document)
        if indexed is None:
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
        wanted = last
        if last - first + 1 > MAX_DOCUMENT_LINES:
            last = first + MAX_DOCUMENT_LINES - 1
        chosen = lines[first - 1 : last]
        kept = fitting(chosen, self.bounds.reply_bytes, _line_bytes)
        chosen, cut = chosen[:kept], None
        if len(chosen) == 1 and _line_bytes(chosen[0]) > self.bounds.reply_bytes:
            cut = {"text": _line_bytes(chosen[0]) - 1}  # one line longer than a reply
            chosen = [cut_text(chosen[0], self.bounds.reply_bytes)]
        last = first + len(chosen) - 1 if chosen else last
        changed = (info.st_size, info.st_mtime_ns) != (indexed.size_bytes, indexed.mtime_ns)
        return DocumentText(
            path=document,
            root=root.name,
            title=indexed.title,
            start_line=first,
            end_line=last,
            total_lines=total,
            text="\n".join(chosen),
            changed_since_indexed=changed,
            next_start_line=last + 1 if last < wanted else None,
            truncated=cut,
        )

    def _bounded(self, report: IndexReport) -> IndexReport:
        """A refresh's report within the reply bound: a scan that removed or skipped
        thousands of files keeps its counts, and as many of their names as fit."""
        bare = [scan.model_copy(update={"removed": [], "skipped": {}}) for scan in report.scans]
        room = self.bounds.reply_bytes - json_size(report.model_copy(update={"scans": bare}))
        omitted = 0
        for scan, kept in zip(report.scans, bare, strict=True):
            for file in scan.removed:
                if (room := room - json_size(file) - 1) >= 0:
                    kept.removed.append(file)
                else:
                    omitted += 1
            for file, reason in scan.skipped.items():
                if (room := room - json_size(file) - json_size(reason) - 2) >= 0:
                    kept.skipped[file] = reason
                else:
                    omitted += 1
        if not omitted:
            return report
        return report.model_copy(update={"scans": bare, "omitted": omitted})

    def _failure(self, path: str, error: str | None) -> Failure:
        """A failure as status reports it: a long error message cut (core/replies.py)."""
        return Failure(
            path=path, error=None if error is None else cut_text(error, self.bounds.field_bytes)
        )

    # -- status ---------------------------------------------------------------------------

    async def status(self, principal: Principal | None = None) -> IndexStatus:
        """The index as ``principal`` may see it: only visible roots, and a root's folder
        path only for its owner (and admins)."""
        visible = await self.roots(principal)
        counts = await self.store.documents.counts([root.id for root in visible])
        active = await self.store.spaces.active()
        building = await self.store.spaces.building()
        roots = []
        for root in visible:
            by_status = counts.by_root.get(root.id, {})
            roots.append(
                RootStatus(
                    name=root.name,
                    path=str(root.path) if root.owned_by(principal) else None,
                    exists=root.path.is_dir(),
                    owner=root.owner,
                    visibility=root.visibility,
                    excludes=list(root.excludes),
                    documents=sum(by_status.values()),
                    by_status={
                        s: by_status.get(s, 0) for s in ("pending", "synced", "stale", "failed")
                    },
                    last_scan_at=root.last_scan_at,
                )
            )
        rebuild = None
        if building is not None and counts.rebuild_done is not None:
            rebuild = Rebuild(
                model=building.identity.model_id,
                documents_done=counts.rebuild_done,
                documents=counts.documents,
                reason="; ".join(active.identity.differences(building.identity))
                if active is not None
                else None,
            )
        names = {root.name for root in visible}
        return IndexStatus(
            roots=roots,
            model=active.identity.model_id if active else None,
            dimensions=active.dim if active else None,
            configured_model=self.embedder.model_id if self.embedder else None,
            chunks=counts.chunks,
            pending=counts.pending,
            oldest_pending_since=counts.oldest_pending_since,
            failed_count=counts.failed_count,
            failed=[self._failure(f.path, f.error) for f in counts.failed],
            last_sync_at=counts.last_sync_at,
            rebuild=rebuild,
            rebuild_needed=self._rebuild_needed(active, building) if visible else None,
            watchers=[
                watcher
                for watcher in await self._watchers()
                if principal is None or principal.admin or set(watcher.roots) & names
            ],
        )

    async def rebuild_needed(self) -> str | None:
        """Why the index must be rebuilt for the configured model (None: it need not, or
        the rebuild is under way, or there is nothing to index)."""
        if not await self.roots():
            return None
        return self._rebuild_needed(
            await self.store.spaces.active(), await self.store.spaces.building()
        )

    def _rebuild_needed(self, active: Space | None, building: Space | None) -> str | None:
        if self.embedder is None or active is None:
            return None
        wanted = self.embedder.identity
        if active.identity.key() == wanted.key():
            return None
        if building is not None and building.identity.key() == wanted.key():
            return None  # under way: `rebuild` says how far
        differs = "; ".join(active.identity.differences(wanted))
        keeps = (
            "semantic search keeps working meanwhile"
            if active.identity.same_vectors(wanted)
            else "search answers from keywords until it is done"
        )
        return (
            f"the index of {active.identity.model_id} differs from the configured one "
            f"({differs}): `serve` or `index` rebuilds it; {keeps}"
        )

    async def _watchers(self) -> list[WatcherStatus]:
        return [
            WatcherStatus(
                owner=beat.owner,
                kind=beat.kind,
                pid=beat.pid,
                roots=beat.roots,
                alive=beat.seconds_since_beat < HEARTBEAT_STALE_S
                and pid_alive(beat.pid, beat.host),
                last_beat_at=beat.beat_at,
                seconds_since_beat=round(beat.seconds_since_beat, 1),
                last_event_at=beat.last_event_at,
                last_indexed_at=beat.last_indexed_at,
            )
            for beat in await self.store.documents.heartbeats()
        ]


def _split_document_path(path: str) -> tuple[str, str, str]:
    """'<root>/<rest>' into (root, '/', rest); absolute paths are refused first."""
    if "\x00" in path:
        raise InvalidInput("a document path cannot contain a NUL character")
    cleaned = path.replace("\\", "/")
    if cleaned.startswith("/") or PurePosixPath(cleaned).is_absolute() or Path(path).is_absolute():
        raise Forbidden("absolute paths are not allowed: give '<root>/<path within the root>'")
    name, slash, rest = cleaned.partition("/")
    return root_name_of(name), slash, rest


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


def _line_bytes(line: str) -> int:
    """A line's share of document_get's text, its newline included."""
    return len(line.encode("utf-8")) + 1
