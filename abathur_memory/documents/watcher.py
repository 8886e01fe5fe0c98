"""Keeping roots indexed as files change, with watchdog.

File-system events (create, modify, delete, move; editors that save through a temporary
file and a rename arrive as a move onto the .md file) name the files that changed. Once a
root has been quiet for the debounce interval, those files are brought in line and the
changed documents re-embedded, without walking the root; a folder event or a burst of more
than MAX_PATHS files re-scans the whole root instead ((mtime, size) first, so only the files
that changed are read). A saved file costs three write transactions (scan, claim, chunks).
A failure (the model is down, the disk is busy) is logged and retried with backoff; the
daemon keeps going. A heartbeat row, written every HEARTBEAT_S with the times of the last
events and run, lets ``index_status`` show a watcher that died or fell behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from abathur_memory.documents.reports import IndexReport
from abathur_memory.documents.roots import Root
from abathur_memory.documents.scan import is_markdown
from abathur_memory.documents.service import DocumentService
from abathur_memory.errors import AbathurError

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
POLL_S = 0.1
RETRY_MAX_S = 300.0
MAX_PATHS = 50  # more changed files than this in one burst: the root is walked instead
_RELEVANT = (
    FileCreatedEvent,
    FileModifiedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
)


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's thread: hands relevant events to the event loop."""

    def __init__(self, watcher: Watcher, root: Root) -> None:
        self.watcher = watcher
        self.root = root

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not isinstance(event, _RELEVANT):
            return  # opened / closed-without-write and the like
        paths = [os.fsdecode(event.src_path)]
        if getattr(event, "dest_path", ""):
            paths.append(os.fsdecode(event.dest_path))  # a move's destination too
        if event.is_directory:  # a folder moved or removed: walk the root
            self.watcher.loop.call_soon_threadsafe(self.watcher.touch, self.root.id, None)
            return
        changed = [self._relative(p) for p in paths if is_markdown(p)]
        if changed:
            whole = None in changed  # (a path outside the root: walk it to be safe)
            files = None if whole else [p for p in changed if p is not None]
            self.watcher.loop.call_soon_threadsafe(self.watcher.touch, self.root.id, files)

    def _relative(self, path: str) -> str | None:
        relative = os.path.relpath(path, self.root.path)
        if relative.startswith("..") or os.path.isabs(relative):
            return None
        return relative.replace(os.sep, "/")


class Watcher:
    def __init__(
        self, docs: DocumentService, *, debounce_ms: int = 500, kind: str = "watcher"
    ) -> None:
        self.docs = docs
        self.debounce = debounce_ms / 1000
        self.kind = kind
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{kind}"
        self.loop = asyncio.get_event_loop()
        self._dirty: dict[int, float] = {}  # root id -> time of the last event
        # root id -> the files its events named; absent: walk the whole root (a folder
        # event, a burst of more than MAX_PATHS files, a retry after a failed walk)
        self._paths: dict[int, set[str]] = {}
        self.indexed_runs = 0
        self.ready = asyncio.Event()
        # When the last events arrived and the last run ended (time.monotonic()), for the
        # next heartbeat: a write of its own per run would delay the next saved file.
        self._events_at: float | None = None
        self._indexed_at: float | None = None

    def touch(self, root_id: int, paths: list[str] | None = None) -> None:
        """Mark a root changed: at ``paths`` (relative to it), or anywhere (None)."""
        already_whole = root_id in self._dirty and root_id not in self._paths
        self._dirty[root_id] = time.monotonic()
        if paths is None or already_whole:
            self._paths.pop(root_id, None)
            return
        named = self._paths.setdefault(root_id, set())
        named.update(paths)
        if len(named) > MAX_PATHS:
            del self._paths[root_id]

    async def run(self, stop: asyncio.Event) -> None:
        self.loop = asyncio.get_running_loop()
        roots = await self.docs.roots()
        observer = Observer()
        for root in roots:
            if root.path.is_dir():
                observer.schedule(_Handler(self, root), str(root.path), recursive=True)
            else:
                log.warning("root %s (%s) does not exist; not watched", root.name, root.path)
        observer.daemon = True
        observer.start()
        await self._beat(roots, started=True)
        try:
            await self._catch_up(roots)
            self.ready.set()
            last_beat = time.monotonic()
            failures = 0
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)
                now = time.monotonic()
                due = [rid for rid, at in self._dirty.items() if now - at >= self.debounce]
                if due:
                    named = {rid: self._paths.pop(rid) for rid in due if rid in self._paths}
                    self._events_at = max(self._dirty.pop(rid) for rid in due)
                    try:
                        await self._index_changes([r for r in roots if r.id in due], named)
                        failures = 0
                    except (AbathurError, OSError) as exc:
                        failures += 1
                        delay = min(RETRY_MAX_S, 2.0**failures)
                        log.warning("re-indexing failed (%s); retrying in %.0fs", exc, delay)
                        for rid in due:  # try again later (the whole root: it is safe)
                            self._dirty[rid] = now + delay - self.debounce
                if now - last_beat >= HEARTBEAT_S:
                    await self._beat(roots)
                    last_beat = now
        finally:
            observer.stop()
            await asyncio.to_thread(observer.join, 5)
            with contextlib.suppress(AbathurError):
                await self.docs.store.documents.forget_beat(self.owner)

    async def _catch_up(self, roots: list[Root]) -> None:
        """Index whatever changed while nobody was watching."""
        try:
            await self._indexed(await self.docs.index(roots))
        except (AbathurError, OSError) as exc:
            log.warning("initial indexing failed (%s); will retry on the next change", exc)
            for root in roots:
                self._dirty[root.id] = time.monotonic()

    async def _index_changes(self, roots: list[Root], named: dict[int, set[str]]) -> None:
        """The files the events named, each root with named files on its own; the other
        roots walked together."""
        walk = [root for root in roots if root.id not in named]
        if walk:
            await self._indexed(await self.docs.index(walk))
        for root in roots:
            if root.id in named:
                await self._indexed(await self.docs.index_files(root, sorted(named[root.id])))

    async def _indexed(self, report: IndexReport) -> None:
        """Count a finished run (the next heartbeat says when), and log what it re-indexed."""
        self.indexed_runs += 1
        self._indexed_at = time.monotonic()
        if report.work and (report.work.documents_done or report.work.documents_failed):
            log.info("re-indexed %s", report.work.model_dump())

    async def _beat(self, roots: list[Root], *, started: bool = False) -> None:
        now = time.monotonic()
        await self.docs.store.documents.beat(
            self.owner,
            self.kind,
            [r.name for r in roots],
            started=started,
            event_age_s=None if self._events_at is None else now - self._events_at,
            indexed_age_s=None if self._indexed_at is None else now - self._indexed_at,
        )
