"""Embedding what changed: claim documents, read, chunk, embed, store.

Documents are claimed with a lease in the database, so two processes working on the same
roots never embed the same document twice. Each document is written in one transaction:
a process killed mid-run leaves every document either fully indexed or untouched, and the
next run carries on with what is left. Chunks whose text the space already holds reuse that
vector instead of being embedded again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from abathur_memory.core.documents import IndexedDocument, ParsedDocument, Vector, WorkScope
from abathur_memory.core.spaces import Space
from abathur_memory.documents import markdown, safe_files, scan
from abathur_memory.documents.liveness import pid_alive
from abathur_memory.documents.markdown import ChunkingPolicy
from abathur_memory.documents.reads import Reads
from abathur_memory.documents.reports import WorkReport
from abathur_memory.embedders.base import Embedder
from abathur_memory.errors import Forbidden, InvalidInput, NotFound, Unavailable
from abathur_memory.store.protocols import Store

log = logging.getLogger(__name__)

# Texts per model call. The run can stop between calls; a call in flight (about two seconds
# for the embedded model on two cores, 8 chunks/s) is waited for.
EMBED_SLICE = 16


class _Stopped(Exception):
    """Raised inside a token count when the run that wanted the chunks was cancelled."""


@dataclass
class Progress:
    documents_total: int = 0
    documents_done: int = 0
    documents_failed: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    embed_seconds: float = 0.0
    bytes_total: int = 0  # of the documents to index: what the time estimate counts
    bytes_done: int = 0
    held_elsewhere: int = 0  # documents another indexer was working on when this run ended
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds the run took (so far, while it is running)."""
        return (self.finished or time.monotonic()) - self.started

    def report(self) -> WorkReport:
        return WorkReport(
            documents_done=self.documents_done,
            documents_failed=self.documents_failed,
            chunks_embedded=self.chunks_embedded,
            chunks_reused=self.chunks_reused,
            embed_seconds=round(self.embed_seconds, 3),
            seconds=round(self.elapsed, 3),
            held_elsewhere=self.held_elsewhere,
        )


ProgressCallback = Callable[[Progress], None]


@dataclass
class _Claimed:
    id: int
    root_path: Path
    rel: str
    file_path: str
    content_hash: str
    size_hint: int = 0
    parsed: ParsedDocument | None = None
    hashes: frozenset[str] = frozenset()  # of its chunks' texts, once parsed
    read_hash: str = ""
    size: int = 0
    mtime_ns: int = 0


async def _settled(task: asyncio.Future[None]) -> bool:
    """Wait for ``task`` to end (whatever else is cancelled); whether it succeeded."""
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            continue  # a second interruption: the write still decides what was kept
    return not task.cancelled() and task.exception() is None


def dead_here(owner: str) -> bool:
    """Whether a lease owner (``host:pid:...``) is a process of this host that is gone."""
    parts = owner.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    gone = not pid_alive(int(parts[1]))
    if gone:
        log.info("releasing documents leased by %s, which is gone", owner)
    return gone


class IndexWorker:
    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        max_file_bytes: int = 10 * 1024 * 1024,
        batch_documents: int = 16,
        owner: str | None = None,
        chunk_target_tokens: int = 256,
        chunk_overlap_tokens: int = 32,
    ) -> None:
        self.store = store
        self.documents = store.documents
        self.embedder = embedder
        self.max_file_bytes = max_file_bytes
        self.batch_documents = batch_documents
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._reads: Reads | None = None  # the current run's
        self.policy = ChunkingPolicy.for_model(
            embedder.identity.max_tokens, target=chunk_target_tokens, overlap=chunk_overlap_tokens
        )

    async def target_space(self) -> Space:
        """The space new work goes to (created, or found, for the embedder's identity)."""
        return await self.store.spaces.for_identity(self.embedder.identity)

    async def run(
        self,
        progress: ProgressCallback | None = None,
        *,
        roots: list[int] | None = None,
        documents: list[int] | None = None,
        space: Space | None = None,
        reads: Reads | None = None,
    ) -> Progress:
        """Index every document that needs it (only those of ``roots`` or ``documents`` when
        given), then activate a finished rebuild.

        ``space`` is the one the caller resolved for this run (else it is looked up here);
        ``reads`` holds the bytes the run's scan read, parsed instead of reading them again.
        A batch costs one write transaction to claim it and one per model call that
        completes documents; a batch smaller than asked for was the last one (what became
        claimable meanwhile is the next run's)."""
        scope = WorkScope(
            root_ids=tuple(roots) if roots is not None else None,
            document_ids=tuple(documents) if documents is not None else None,
        )
        if space is None:
            space = await self.target_space()
        self._reads = reads
        state = Progress()
        state.documents_total, state.bytes_total = await self.documents.remaining(space.id, scope)
        if progress:
            progress(state)
        while True:
            claimed = await self._claim(space, scope)
            if not claimed:
                break
            try:
                await self._process(space, claimed, state)
            except BaseException:
                await asyncio.shield(self.documents.release([c.id for c in claimed], self.owner))
                raise
            if progress:
                progress(state)
            if len(claimed) < self.batch_documents:
                break
        state.held_elsewhere = await self.documents.held_elsewhere(self.owner, scope)
        if space.status == "building" and await self.documents.finish_rebuild(space):
            log.warning("the rebuilt index for %s is now active", space.identity.model_id)
        state.finished = time.monotonic()
        return state

    async def _claim(self, space: Space, scope: WorkScope) -> list[_Claimed]:
        rows = await self.documents.claim(
            space.id, self.owner, self.batch_documents, scope, dead_here
        )
        if not rows:
            return []
        roots = {root.id: root.path for root in await self.store.roots.all()}
        claimed = []
        for row in rows:
            _, _, rel = row.file_path.partition("/")
            claimed.append(
                _Claimed(
                    row.id, roots[row.root_id], rel, row.file_path, row.content_hash, row.size_bytes
                )
            )
        return claimed

    async def _process(self, space: Space, claimed: list[_Claimed], state: Progress) -> None:
        try:
            await self._process_batch(space, claimed, state)
        finally:
            state.bytes_done += sum(item.size_hint for item in claimed)

    async def _process_batch(self, space: Space, claimed: list[_Claimed], state: Progress) -> None:
        ready: list[_Claimed] = []
        for item in claimed:
            problem = await self._parse(item)
            if item.parsed is not None:
                ready.append(item)
            elif problem == "vanished":
                await self.documents.delete(item.id)
            elif isinstance(problem, tuple):
                reason, transient = problem
                await self.documents.mark_failed(item.id, reason, transient=transient)
                state.documents_failed += 1
                log.warning("cannot index %s: %s", item.file_path, reason)
        if not ready:
            return
        texts: dict[str, str] = {}  # text hash -> embed text (a hash is computed once)
        for item in ready:
            chunks = item.parsed.chunks if item.parsed else []
            hashed = [(c.text_hash, c.embed_text) for c in chunks]
            item.hashes = frozenset(h for h, _ in hashed)
            texts.update(hashed)
        known = await self.documents.reusable_vectors(space, set(texts))
        if space.status == "building" and len(known) < len(texts):
            # A rebuild that only re-chunks (same vectors, another chunker): the texts that
            # did not change keep the vectors the active space has for them.
            active = await self.store.spaces.active()
            if active is not None and active.identity.same_vectors(space.identity):
                found = await self.documents.reusable_vectors(active, set(texts) - known.keys())
                known.update(found)
        missing = {h: text for h, text in texts.items() if h not in known}
        chunk_count = sum(len(item.parsed.chunks) for item in ready if item.parsed)
        state.chunks_reused += chunk_count - len(missing)
        # Embedded a slice at a time, in document order, the documents whose vectors are all
        # known written after each model call (those that need none, with the first): an
        # interrupted run keeps what it finished, and stops after the slice in flight (a
        # model running in a thread cannot be cut short).
        queue = list(missing.items())
        position = 0
        while True:
            await asyncio.sleep(0)  # a cancellation lands here even if the model never awaits
            batch = queue[position : position + EMBED_SLICE]
            position += len(batch)
            if not batch:
                await self._write_finished(space, ready, known, state)
                break
            started = time.monotonic()
            try:
                matrix = await self.embedder.embed_documents([text for _, text in batch])
            except InvalidInput as exc:  # an input the model refuses: fail these documents
                ready = await self._write_finished(space, ready, known, state)
                for item in ready:
                    await self.documents.mark_failed(item.id, str(exc), transient=False)
                state.documents_failed += len(ready)
                return
            state.embed_seconds += time.monotonic() - started
            state.chunks_embedded += len(batch)
            known.update(zip((key for key, _ in batch), matrix, strict=True))
            ready = await self._write_finished(space, ready, known, state)

    async def _write_finished(
        self, space: Space, ready: list[_Claimed], known: dict[str, Vector], state: Progress
    ) -> list[_Claimed]:
        """Write the documents whose every chunk has its vector; return the others."""
        finished = [item for item in ready if known.keys() >= item.hashes]
        if not finished:
            return ready
        indexed = [
            IndexedDocument(
                id=item.id,
                content_hash=item.read_hash,
                size_bytes=item.size,
                mtime_ns=item.mtime_ns,
                content_changed=item.read_hash != item.content_hash,
                parsed=item.parsed,
            )
            for item in finished
            if item.parsed is not None
        ]
        needed = frozenset().union(*(item.hashes for item in finished))
        # A write, once begun, is waited for and counted even if the run is cancelled
        # meanwhile: the report of an interrupted run must match what was committed.
        writing = asyncio.ensure_future(
            self.documents.write(space, indexed, {h: known[h] for h in needed})
        )
        try:
            await asyncio.shield(writing)
        except asyncio.CancelledError:
            if await _settled(writing):
                state.documents_done += len(finished)
            raise
        state.documents_done += len(finished)
        written = {item.id for item in finished}
        return [item for item in ready if item.id not in written]

    async def _parse(self, item: _Claimed) -> str | tuple[str, bool] | None:
        """Read and chunk one document in a thread; cancelled, the thread stops at its next
        token count instead of chunking a large file to the end."""
        stop = threading.Event()
        try:
            return await asyncio.to_thread(self._read_and_parse, item, stop)
        except BaseException:
            stop.set()
            raise

    def _read_and_parse(
        self, item: _Claimed, stop: threading.Event | None = None
    ) -> str | tuple[str, bool] | None:
        """Fill item.parsed; return None, "vanished", or (reason, worth retrying).

        The bytes come from the run's scan when it read this very content (``reads``), else
        from the file, opened without following a symbolic link in any component of its path
        (safe_files), so a folder swapped for a link after the scan cannot leak in."""
        kept = self._reads.take(item.file_path, item.content_hash) if self._reads else None
        try:
            if kept is not None:
                data, size, mtime_ns = kept.data, kept.size, kept.mtime_ns
            else:
                data, info = safe_files.read_in_root(
                    item.root_path, item.rel, max_bytes=self.max_file_bytes
                )
                size, mtime_ns = info.st_size, info.st_mtime_ns
        except NotFound:
            return "vanished"
        except Forbidden:
            return "symbolic links are not indexed", False
        except safe_files.TooLarge:
            return f"larger than the {self.max_file_bytes:,}-byte limit (max_file_bytes)", False
        except InvalidInput as exc:
            return str(exc), False
        except Unavailable as exc:  # permission, I/O: worth another try later
            return str(exc), True
        if not data.strip():
            return "empty file", False
        if b"\x00" in data[:8192]:
            return "binary content in a markdown file", False
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return f"not UTF-8 text (byte {exc.start})", False
        item.read_hash = kept.content_hash if kept is not None else scan.hash_bytes(data)
        item.size, item.mtime_ns = size, mtime_ns
        count_tokens = self.embedder.count_tokens

        def count(text: str) -> int:
            if stop is not None and stop.is_set():
                raise _Stopped
            return count_tokens(text)

        try:
            item.parsed = markdown.parse_markdown(
                text, file_stem=Path(item.rel).stem, count_tokens=count, policy=self.policy
            )
        except _Stopped:
            return None
        return None
