"""Audit rows for denied operations, written without making the denied caller wait.

A denial is answered at once: its audit row is queued here and written by a background
flush, so a denied read never waits behind another process's write lock. Repeats (same
actor, action, target and rule) are folded into one row with a count: within a flush, and
into the row written by an earlier flush in the last ``FOLD_WINDOW_S`` seconds, so a client
hammering a forbidden key adds a counter, not megabytes of audit rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from abathur_memory.core.principal import Principal
from abathur_memory.core.records import Denial
from abathur_memory.errors import AbathurError
from abathur_memory.store.protocols import AuditStore

log = logging.getLogger(__name__)

FLUSH_DELAY_S = 0.05  # a burst of denials within this is written in one transaction
FOLD_WINDOW_S = 60.0
RETRY_S = 1.0
MAX_QUEUED = 10_000  # distinct denials held while the database stays locked


@dataclass
class _Written:
    audit_id: int
    at: float


class DenialRecorder:
    """Thread-safe: services decide on ownership inside database threads and record there."""

    def __init__(self, audit: AuditStore) -> None:
        self.audit = audit
        self._queued: dict[Denial, int] = {}
        self._written: dict[Denial, _Written] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        self.dropped = 0

    def record(self, denial: Denial) -> None:
        """Queue ``denial`` (never blocks); a flush is scheduled on the event loop."""
        with self._lock:
            if denial not in self._queued and len(self._queued) >= MAX_QUEUED:
                self.dropped += 1
                return
            self._queued[denial] = self._queued.get(denial, 0) + 1
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # a database worker thread: hand the scheduling to the loop
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._schedule)
            return
        self._schedule()

    def record_document_denial(
        self, principal: Principal, attempted: str, target: str, rule: str
    ) -> None:
        self.record(Denial(principal.actor, "document_denied", attempted, target, rule))

    def _schedule(self) -> None:
        if self._flush_task is not None and not self._flush_task.done():
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # no loop: flush() writes them later
        self._flush_task = loop.create_task(self._flush_soon(), name="audit-denials")

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_DELAY_S)
        while self._queued:
            try:
                await self.flush()
            except AbathurError as exc:  # locked or closed: keep them, try again
                log.info("denied operations not audited yet (%s); retrying", exc)
                await asyncio.sleep(RETRY_S)

    async def flush(self) -> None:
        """Write what is queued (one transaction). Safe to call at any time."""
        with self._lock:
            if not self._queued:
                return
            batch, self._queued = self._queued, {}
        now = time.monotonic()
        recent = {d: w.audit_id for d, w in self._written.items() if now - w.at < FOLD_WINDOW_S}
        try:
            ids = await self.audit.write_denials(batch, recent)
        except BaseException:
            with self._lock:  # put them back for the next attempt
                for denial, count in batch.items():
                    self._queued[denial] = self._queued.get(denial, 0) + count
            raise
        self._written = {d: w for d, w in self._written.items() if now - w.at < FOLD_WINDOW_S}
        for denial, audit_id in ids.items():
            self._written[denial] = _Written(audit_id, now)

    async def close(self) -> None:
        if self._flush_task is not None:
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flush_task
        with contextlib.suppress(AbathurError):
            await self.flush()
