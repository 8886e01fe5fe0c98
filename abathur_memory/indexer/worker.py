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
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from abathur_memory.errors import InvalidInput
from abathur_memory.indexer import markdown, scan, spaces, store
from abathur_memory.indexer.embedders.base import Embedder
from abathur_memory.indexer.liveness import pid_alive
from abathur_memory.indexer.markdown import ChunkingPolicy, ParsedDocument
from abathur_memory.storage import driver, timestamps
from abathur_memory.storage.database import Database

log = logging.getLogger(__name__)

LEASE_SECONDS = 300

_CLAIM = f"""
UPDATE document_index
SET lease_owner = :owner,
    lease_until = strftime('%Y-%m-%d %H:%M:%f', 'now', '+{LEASE_SECONDS} seconds')
WHERE id IN (
    SELECT d.id FROM document_index AS d
    WHERE d.root_id IS NOT NULL
      AND (d.sync_status IN ('pending', 'stale')
           OR (d.sync_status = 'failed' AND d.next_attempt_at IS NOT NULL
               AND d.next_attempt_at <= {timestamps.SQL_NOW}))
      AND (d.lease_until IS NULL OR d.lease_until < {timestamps.SQL_NOW})
      AND NOT EXISTS (SELECT 1 FROM space_documents AS sd
                      WHERE sd.space_id = :space AND sd.document_id = d.id
                        AND sd.content_hash = d.content_hash)
    ORDER BY d.id
    LIMIT :limit)
RETURNING id, root_id, file_path, content_hash
"""

_REMAINING = """
SELECT count(*) FROM document_index AS d
WHERE d.root_id IS NOT NULL AND d.sync_status != 'failed'
  AND NOT EXISTS (SELECT 1 FROM space_documents AS sd
                  WHERE sd.space_id = :space AND sd.document_id = d.id
                    AND sd.content_hash = d.content_hash)
"""


@dataclass
class Progress:
    documents_total: int = 0
    documents_done: int = 0
    documents_failed: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    embed_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds the run took (so far, while it is running)."""
        return (self.finished or time.monotonic()) - self.started

    def as_dict(self) -> dict[str, float | int]:
        return {
            "documents_done": self.documents_done,
            "documents_failed": self.documents_failed,
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
            "embed_seconds": round(self.embed_seconds, 3),
            "seconds": round(self.elapsed, 3),
        }


ProgressCallback = Callable[[Progress], None]


@dataclass
class _Claimed:
    id: int
    root_path: Path
    rel: str
    file_path: str
    content_hash: str
    parsed: ParsedDocument | None = None
    read_hash: str = ""
    size: int = 0
    mtime_ns: int = 0


def _reap_dead_leases(conn: driver.Connection) -> None:
    """Free documents leased by a process of this host that no longer exists (killed)."""
    host = socket.gethostname()
    owners = conn.execute(
        "SELECT DISTINCT lease_owner FROM document_index WHERE lease_owner LIKE ?"
        f" AND lease_until > {timestamps.SQL_NOW}",
        (f"{host}:%",),
    ).fetchall()
    for (owner,) in owners:
        parts = owner.split(":")
        if len(parts) >= 2 and parts[1].isdigit() and not pid_alive(int(parts[1])):
            log.info("releasing documents leased by %s, which is gone", owner)
            conn.execute(
                "UPDATE document_index SET lease_owner = NULL, lease_until = NULL"
                " WHERE lease_owner = ?",
                (owner,),
            )


class IndexWorker:
    def __init__(
        self,
        db: Database,
        embedder: Embedder,
        *,
        max_file_bytes: int = 10 * 1024 * 1024,
        batch_documents: int = 16,
        owner: str | None = None,
        chunk_target_tokens: int = 256,
        chunk_overlap_tokens: int = 32,
    ) -> None:
        self.db = db
        self.embedder = embedder
        self.max_file_bytes = max_file_bytes
        self.batch_documents = batch_documents
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.policy = ChunkingPolicy.for_model(
            embedder.identity.max_tokens, target=chunk_target_tokens, overlap=chunk_overlap_tokens
        )

    async def target_space(self) -> spaces.Space:
        """The space new work goes to (created, or found, for the embedder's identity)."""
        return await self.db.write(spaces.space_for, self.embedder.identity)

    async def run(self, progress: ProgressCallback | None = None) -> Progress:
        """Index every document that needs it, then activate a finished rebuild."""
        space = await self.target_space()
        state = Progress()
        state.documents_total = (await self.db.fetchone(_REMAINING, {"space": space.id}))[0]
        while True:
            claimed = await self._claim(space)
            if not claimed:
                break
            try:
                await self._process(space, claimed, state)
            except BaseException:
                await self._release(claimed)
                raise
            if progress:
                progress(state)
        if space.status == "building":
            await self._finish_rebuild(space)
        state.finished = time.monotonic()
        return state

    async def _claim(self, space: spaces.Space) -> list[_Claimed]:
        def claim(conn: driver.Connection) -> list[_Claimed]:
            _reap_dead_leases(conn)
            rows = conn.execute(
                _CLAIM, {"owner": self.owner, "space": space.id, "limit": self.batch_documents}
            ).fetchall()
            roots = {
                r["id"]: Path(r["path"]) for r in conn.execute("SELECT id, path FROM doc_roots")
            }
            claimed = []
            for row in rows:
                _, _, rel = row["file_path"].partition("/")
                claimed.append(
                    _Claimed(
                        row["id"], roots[row["root_id"]], rel, row["file_path"], row["content_hash"]
                    )
                )
            return claimed

        return await self.db.write(claim)

    async def _release(self, claimed: list[_Claimed]) -> None:
        ids = [c.id for c in claimed]

        def release(conn: driver.Connection) -> None:
            conn.executemany(
                "UPDATE document_index SET lease_owner = NULL, lease_until = NULL"
                " WHERE id = ? AND lease_owner = ?",
                [(i, self.owner) for i in ids],
            )

        await asyncio.shield(self.db.write(release))

    async def _process(self, space: spaces.Space, claimed: list[_Claimed], state: Progress) -> None:
        ready: list[_Claimed] = []
        for item in claimed:
            problem = await asyncio.to_thread(self._read_and_parse, item)
            if problem is None:
                ready.append(item)
            elif problem == "vanished":
                await self.db.execute_write("DELETE FROM document_index WHERE id = ?", (item.id,))
            else:
                reason, transient = problem
                await self.db.write(store.mark_failed, item.id, reason, transient=transient)
                state.documents_failed += 1
                log.warning("cannot index %s: %s", item.file_path, reason)
        if not ready:
            return
        hashes = {c.text_hash for item in ready for c in item.parsed.chunks}  # type: ignore[union-attr]
        known = await self.db.read(store.reusable_vectors, space, hashes)
        missing: dict[str, str] = {}
        for item in ready:
            for chunk in item.parsed.chunks:  # type: ignore[union-attr]
                if chunk.text_hash not in known:
                    missing.setdefault(chunk.text_hash, chunk.embed_text)
        state.chunks_reused += sum(len(i.parsed.chunks) for i in ready) - len(missing)  # type: ignore[union-attr]
        if missing:
            started = time.monotonic()
            try:
                matrix = await self.embedder.embed_documents(list(missing.values()))
            except InvalidInput as exc:  # an input the model refuses: fail these documents
                for item in ready:
                    await self.db.write(store.mark_failed, item.id, str(exc), transient=False)
                state.documents_failed += len(ready)
                return
            state.embed_seconds += time.monotonic() - started
            state.chunks_embedded += len(missing)
            known.update(zip(missing, store.encode_rows(matrix), strict=True))
        await self.db.write(self._write_batch, space, ready, known)
        state.documents_done += len(ready)

    def _write_batch(
        self,
        conn: driver.Connection,
        space: spaces.Space,
        ready: list[_Claimed],
        known: dict[str, tuple[bytes, bytes]],
    ) -> None:
        for item in ready:
            if item.read_hash != item.content_hash:  # changed since the scan: record what we read
                conn.execute(
                    "UPDATE document_index SET content_hash = ?, size_bytes = ?, mtime_ns = ?"
                    " WHERE id = ?",
                    (item.read_hash, item.size, item.mtime_ns, item.id),
                )
            store.write_document(conn, space, item.id, item.read_hash, item.parsed, known)  # type: ignore[arg-type]

    def _read_and_parse(self, item: _Claimed) -> str | tuple[str, bool] | None:
        """Fill item.parsed; return None, "vanished", or (reason, worth retrying)."""
        path = item.root_path / item.rel
        try:
            if path.is_symlink():
                return "symbolic links are not indexed", False
            info = path.stat()
            if info.st_size > self.max_file_bytes:
                return f"larger than the {self.max_file_bytes:,}-byte limit (max_file_bytes)", False
            data = path.read_bytes()
        except FileNotFoundError:
            return "vanished"
        except OSError as exc:
            return f"cannot read: {exc.strerror}", True
        if not data.strip():
            return "empty file", False
        if b"\x00" in data[:8192]:
            return "binary content in a markdown file", False
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return f"not UTF-8 text (byte {exc.start})", False
        item.read_hash = scan.hash_bytes(data)
        item.size, item.mtime_ns = info.st_size, info.st_mtime_ns
        item.parsed = markdown.parse_markdown(
            text,
            file_stem=Path(item.rel).stem,
            count_tokens=self.embedder.count_tokens,
            policy=self.policy,
        )
        return None

    async def _finish_rebuild(self, space: spaces.Space) -> None:
        def finish(conn: driver.Connection) -> bool:
            remaining = conn.execute(_REMAINING, {"space": space.id}).fetchone()[0]
            if remaining:
                return False
            spaces.activate(conn, space)
            conn.execute(
                "UPDATE document_index SET sync_status = 'synced', embedding_model = ?,"
                " chunk_count = (SELECT chunk_count FROM space_documents AS sd"
                "   WHERE sd.space_id = ? AND sd.document_id = document_index.id)"
                " WHERE id IN (SELECT sd.document_id FROM space_documents AS sd"
                "   WHERE sd.space_id = ? AND sd.content_hash = document_index.content_hash)",
                (space.identity.model_id, space.id, space.id),
            )
            return True

        if await self.db.write(finish):
            log.warning("the rebuilt index for %s is now active", space.identity.model_id)
