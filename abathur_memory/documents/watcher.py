"""Keeping roots indexed as files change, with watchdog.

File-system events (create, modify, delete, move; editors that save through a temporary
file and a rename arrive as a move onto the .md file) mark their root dirty. Once a root has
been quiet for the debounce interval, it is re-scanned ((mtime, size) first, so only the
files that changed are read) and the changed documents are re-embedded. A failure (the
model is down, the disk is busy) is logged and retried with backoff; the daemon keeps going.
A heartbeat row lets ``index_status`` show a watcher that died or fell behind.
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

from abathur_memory.documents.roots import Root
from abathur_memory.documents.scan import is_markdown
from abathur_memory.documents.service import DocumentService
from abathur_memory.errors import AbathurError

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
POLL_S = 0.1
RETRY_MAX_S = 300.0
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
        paths = [str(event.src_path)]
        if getattr(event, "dest_path", ""):
            paths.append(str(event.dest_path))
        if event.is_directory or any(is_markdown(p) for p in paths):
            self.watcher.loop.call_soon_threadsafe(self.watcher.touch, self.root.id)


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
        self.indexed_runs = 0
        self.ready = asyncio.Event()

    def touch(self, root_id: int) -> None:
        self._dirty[root_id] = time.monotonic()

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
                    for rid in due:
                        self._dirty.pop(rid, None)
                    try:
                        await self._index([r for r in roots if r.id in due], event=True)
                        failures = 0
                    except (AbathurError, OSError) as exc:
                        failures += 1
                        delay = min(RETRY_MAX_S, 2.0**failures)
                        log.warning("re-indexing failed (%s); retrying in %.0fs", exc, delay)
                        for rid in due:  # try again later
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
            await self._index(roots, event=False)
        except (AbathurError, OSError) as exc:
            log.warning("initial indexing failed (%s); will retry on the next change", exc)
            for root in roots:
                self._dirty[root.id] = time.monotonic()

    async def _index(self, roots: list[Root], *, event: bool) -> None:
        if event:
            await self.docs.store.documents.beat_event(self.owner)
        report = await self.docs.index(roots)
        self.indexed_runs += 1
        await self.docs.store.documents.beat_indexed(self.owner)
        if report.work and (report.work.documents_done or report.work.documents_failed):
            log.info("re-indexed %s", report.work.model_dump())

    async def _beat(self, roots: list[Root], *, started: bool = False) -> None:
        await self.docs.store.documents.beat(
            self.owner, self.kind, [r.name for r in roots], started=started
        )
