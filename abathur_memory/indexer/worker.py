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

from abathur_memory.errors import Forbidden, InvalidInput, NotFound, Unavailable
from abathur_memory.indexer import markdown, safe_files, scan, spaces, store
from abathur_memory.indexer.embedders.base import Embedder
from abathur_memory.indexer.liveness import pid_alive
from abathur_memory.indexer.markdown import ChunkingPolicy, ParsedDocument
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite.database import Database

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
      {{scope}}
    ORDER BY d.id
    LIMIT :limit)
RETURNING id, root_id, file_path, content_hash, size_bytes
"""

_REMAINING = """
SELECT count(*), COALESCE(sum(d.size_bytes), 0) FROM document_index AS d
WHERE d.root_id IS NOT NULL AND d.sync_status != 'failed'
  AND NOT EXISTS (SELECT 1 FROM space_documents AS sd
                  WHERE sd.space_id = :space AND sd.document_id = d.id
                    AND sd.content_hash = d.content_hash)
  {scope}
"""

# Documents of the same scope another process is indexing right now (its lease is live).
_HELD_ELSEWHERE = f"""
SELECT count(*) FROM document_index AS d
WHERE d.root_id IS NOT NULL AND d.lease_owner IS NOT NULL AND d.lease_owner != :owner
  AND d.lease_until > {timestamps.SQL_NOW}
  {{scope}}
"""


def _scope(roots: list[int] | None, documents: list[int] | None) -> str:
    """SQL restricting the work to some roots or documents (ids are integers we made)."""
    if documents is not None:
        return f"AND d.id IN ({','.join(str(int(i)) for i in documents) or 'NULL'})"
    if roots is not None:
        return f"AND d.root_id IN ({','.join(str(int(i)) for i in roots) or 'NULL'})"
    return ""


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

    def as_dict(self) -> dict[str, float | int]:
        return {
            "documents_done": self.documents_done,
            "documents_failed": self.documents_failed,
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
            "embed_seconds": round(self.embed_seconds, 3),
            "seconds": round(self.elapsed, 3),
            "held_elsewhere": self.held_elsewhere,
        }


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

    async def run(
        self,
        progress: ProgressCallback | None = None,
        *,
        roots: list[int] | None = None,
        documents: list[int] | None = None,
    ) -> Progress:
        """Index every document that needs it (only those of ``roots`` or ``documents`` when
        given), then activate a finished rebuild."""
        scope = _scope(roots, documents)
        space = await self.target_space()
        state = Progress()
        remaining = await self.db.fetchone(_REMAINING.format(scope=scope), {"space": space.id})
        assert remaining is not None  # an aggregate without GROUP BY always returns one row
        state.documents_total, state.bytes_total = remaining[0], remaining[1]
        if progress:
            progress(state)
        while True:
            claimed = await self._claim(space, scope)
            if not claimed:
                break
            try:
                await self._process(space, claimed, state)
            except BaseException:
                await self._release(claimed)
                raise
            if progress:
                progress(state)
        held = await self.db.fetchone(_HELD_ELSEWHERE.format(scope=scope), {"owner": self.owner})
        assert held is not None  # an aggregate without GROUP BY always returns one row
        state.held_elsewhere = held[0]
        if space.status == "building":
            await self._finish_rebuild(space)
        state.finished = time.monotonic()
        return state

    async def _claim(self, space: spaces.Space, scope: str = "") -> list[_Claimed]:
        def claim(conn: driver.Connection) -> list[_Claimed]:
            _reap_dead_leases(conn)
            rows = conn.execute(
                _CLAIM.format(scope=scope),
                {"owner": self.owner, "space": space.id, "limit": self.batch_documents},
            ).fetchall()
            roots = {
                r["id"]: Path(r["path"]) for r in conn.execute("SELECT id, path FROM doc_roots")
            }
            claimed = []
            for row in rows:
                _, _, rel = row["file_path"].partition("/")
                claimed.append(
                    _Claimed(
                        row["id"],
                        roots[row["root_id"]],
                        rel,
                        row["file_path"],
                        row["content_hash"],
                        row["size_bytes"] or 0,
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
        try:
            await self._process_batch(space, claimed, state)
        finally:
            state.bytes_done += sum(item.size_hint for item in claimed)

    async def _process_batch(
        self, space: spaces.Space, claimed: list[_Claimed], state: Progress
    ) -> None:
        ready: list[tuple[_Claimed, ParsedDocument]] = []
        for item in claimed:
            problem = await asyncio.to_thread(self._read_and_parse, item)
            if item.parsed is not None:
                ready.append((item, item.parsed))
            elif problem == "vanished":
                await self.db.execute_write("DELETE FROM document_index WHERE id = ?", (item.id,))
            elif isinstance(problem, tuple):
                reason, transient = problem
                await self.db.write(store.mark_failed, item.id, reason, transient=transient)
                state.documents_failed += 1
                log.warning("cannot index %s: %s", item.file_path, reason)
        if not ready:
            return
        hashes = {c.text_hash for _, parsed in ready for c in parsed.chunks}
        known = await self.db.read(store.reusable_vectors, space, hashes)
        missing: dict[str, str] = {}
        for _, parsed in ready:
            for chunk in parsed.chunks:
                if chunk.text_hash not in known:
                    missing.setdefault(chunk.text_hash, chunk.embed_text)
        state.chunks_reused += sum(len(parsed.chunks) for _, parsed in ready) - len(missing)
        if missing:
            started = time.monotonic()
            try:
                matrix = await self.embedder.embed_documents(list(missing.values()))
            except InvalidInput as exc:  # an input the model refuses: fail these documents
                for item, _ in ready:
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
        ready: list[tuple[_Claimed, ParsedDocument]],
        known: dict[str, tuple[bytes, bytes]],
    ) -> None:
        for item, parsed in ready:
            if item.read_hash != item.content_hash:  # changed since the scan: record what we read
                conn.execute(
                    "UPDATE document_index SET content_hash = ?, size_bytes = ?, mtime_ns = ?"
                    " WHERE id = ?",
                    (item.read_hash, item.size, item.mtime_ns, item.id),
                )
            store.write_document(conn, space, item.id, item.read_hash, parsed, known)

    def _read_and_parse(self, item: _Claimed) -> str | tuple[str, bool] | None:
        """Fill item.parsed; return None, "vanished", or (reason, worth retrying).

        The file is opened without following a symbolic link in any component of its path
        (safe_files), so a folder swapped for a link after the scan cannot leak in."""
        try:
            data, info = safe_files.read_in_root(
                item.root_path, item.rel, max_bytes=self.max_file_bytes
            )
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
            remaining = conn.execute(_REMAINING.format(scope=""), {"space": space.id}).fetchone()[0]
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
