"""Keeping the search indexes of memories up to date, in the background.

Every memory change writes an audit row in its own transaction, so the audit log is the
change log: the store brings the keyword index up to date from it, and the vectors of the
configured model's space follow the keyword index. Puts stay as cheap as they were and
searches only read: catching up is the job of :class:`MemoryIndexer`, which a server runs
from its first put on, whether or not any document folder is indexed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from abathur_memory.core.search import MemoryVectorPart
from abathur_memory.core.spaces import Space
from abathur_memory.embedders.base import Embedder
from abathur_memory.errors import AbathurError
from abathur_memory.store.protocols import MemoryIndexStore, SpaceStore

log = logging.getLogger(__name__)

EMBED_BATCH = 64
POOL_BATCH = 500  # context vectors pooled per write transaction
POLL_S = 1.0  # how often another process's memory changes are looked for (one read)
RETRY_MAX_S = 300.0


def memory_parts(embedder: Embedder, text: str) -> list[str]:
    """Pieces of a long memory that each fit the model, split between words."""
    limit = embedder.identity.max_tokens
    if embedder.count_tokens(text) <= limit:
        return [text]
    words = text.split()
    pieces, start = [], 0
    size = max(8, limit // 2)
    while start < len(words):
        end = min(len(words), start + size)
        while end - start > 1 and embedder.count_tokens(" ".join(words[start:end])) > limit:
            end = start + max(1, (end - start) * 3 // 4)
        piece = " ".join(words[start:end])
        if embedder.count_tokens(piece) > limit:  # one enormous word: cut its characters
            piece = piece[: limit * 2]
        pieces.append(piece)
        start = end
    return pieces


async def sync_vectors(
    index: MemoryIndexStore, embedder: Embedder, space: Space, *, limit: int | None = None
) -> int:
    """Embed the indexed memories the space has no vectors for; drop vectors of memories
    no longer live. Returns how many memories were embedded (at most ``limit``).

    Writes only when there is something to write: an idle server leaves the file alone.
    """
    if embedder.identity.key() != space.identity.key():
        return 0
    position = await index.keyword_position()  # what is indexed now is embedded below
    if await index.vectors_current(space, position):
        return 0  # nothing changed since a complete round: no pass over the vectors
    if await index.has_stale_vectors(space):
        await index.drop_stale_vectors(space)
    done = 0
    complete = False
    while limit is None or done < limit:
        batch = EMBED_BATCH if limit is None else min(EMBED_BATCH, limit - done)
        memories = await index.unembedded(space, batch)
        if not memories:
            complete = True
            break
        pieces: list[tuple[int, int, str]] = []
        for memory in memories:
            for number, part in enumerate(memory_parts(embedder, f"{memory.key}: {memory.text}")):
                pieces.append((memory.entry_id, number, part))
        matrix = await embedder.embed_documents([piece[2] for piece in pieces])
        parts = [
            MemoryVectorPart(entry_id, number, text, vector)
            for (entry_id, number, text), vector in zip(pieces, matrix, strict=True)
        ]
        await index.write_vectors(space, parts)
        done += len(memories)
    # Context vectors are pooled from the vectors just written: no model call.
    while await index.pool_contexts(space, POOL_BATCH):
        pass
    if complete:
        await index.mark_vectors_current(space, position)
    return done


@dataclass
class CatchUp:
    keywords: int = 0
    embedded: int = 0


class MemoryIndexer:
    """Keeps the memory keyword index and vectors current, off the request path.

    ``wake()`` is called after this process changes memories, so its own changes are
    indexed at once; changes by other processes are noticed by polling the audit log (a
    read) every ``poll_s`` seconds. Nothing is written while there is nothing to do.

    A model that is not in memory is not loaded for what was already there when the server
    started (the seeded app memories of a new database, say): vectors are brought up to
    date once a memory changes after the start, or once the model is loaded anyway (the
    first semantic search), so an idle server does not hold the model.
    """

    def __init__(
        self,
        index: MemoryIndexStore,
        spaces: SpaceStore,
        embedder: Embedder | None,
        *,
        poll_s: float = POLL_S,
    ) -> None:
        self.index = index
        self.spaces = spaces
        self.embedder = embedder
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self.rounds = 0
        self._caught_up_once = False  # the first round catches up what predates the start
        self._changed = False  # memories changed since the last vector round

    def wake(self) -> None:
        self._changed = True
        self._wake.set()

    async def catch_up(self) -> CatchUp:
        """One round: keywords first, then vectors of everything indexed (see the class)."""
        done = CatchUp()
        if await self.index.behind():
            done.keywords = await self.index.sync_keywords()
            if self._caught_up_once and done.keywords:
                self._changed = True  # another process's changes
        self._caught_up_once = True
        if self.embedder is None:
            return done
        space = await self.spaces.memory_space(self.embedder.identity)
        if space is None:  # (no model needed: searches then know vectors can be asked for)
            space = await self.spaces.ensure_memory_space(self.embedder.identity)
        if space is None or not (self._changed or self.embedder.loaded):
            return done
        self._changed = False  # a wake() from now on asks for another round
        try:
            done.embedded = await sync_vectors(self.index, self.embedder, space)
        except BaseException:
            self._changed = True  # try again next round
            raise
        return done

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Catch up until ``stop`` is set; a failing round (model down, database busy) is
        logged and retried with backoff."""
        failures = 0
        while stop is None or not stop.is_set():
            self._wake.clear()
            try:
                await self.catch_up()
                failures = 0
                delay = self.poll_s
            except Exception as exc:  # a failed round must never end the loop
                if not isinstance(exc, AbathurError):
                    log.exception("memory indexing round failed")
                failures += 1
                delay = min(RETRY_MAX_S, self.poll_s * 2**failures)
                log.warning("memory indexing postponed (%s); retrying in %.0fs", exc, delay)
            self.rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
