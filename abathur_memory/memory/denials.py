"""Audit rows for denied operations, written without making the denied caller wait.

A denial is answered at once: its audit row is queued here and written by a background
flush, so a denied read never waits behind another process's write lock. Repeats (same
actor, action, target and rule) are folded into one row with a count: within a flush, and
into the row written by an earlier flush in the last ``FOLD_WINDOW_S`` seconds, so a client
hammering a forbidden key adds a counter, not megabytes of audit rows.

No input may stop the audit:

- every field is made storable when it is recorded (core/audit_text.py: NULs, surrogates
  and control characters escaped, long text cut), which also bounds what the queue holds;
- a batch the database refuses is written again one row at a time, and a row that still
  cannot be stored is replaced by a plain-ASCII placeholder row naming actor and action;
  only when even that fails is the denial lost, and then it is logged and counted;
- while the database is unavailable the queue is kept and retried with backoff.

A write is exactly-once: it runs in its own task, shielded from the cancellation of whoever
awaits it (a server shutting down mid-flush), and only a write that failed before its
commit puts its denials back in the queue. One write runs at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from abathur_memory.core.audit_text import placeholder_for, storable_denial
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import Denial
from abathur_memory.core.throttle import Throttle
from abathur_memory.errors import AbathurError, Unavailable
from abathur_memory.store.protocols import AuditStore

log = logging.getLogger(__name__)

FLUSH_DELAY_S = 0.05  # a burst of denials within this is written in one transaction
FOLD_WINDOW_S = 60.0
RETRY_S = 1.0  # first wait after the database was unavailable; doubles up to MAX_RETRY_S
MAX_RETRY_S = 30.0
MAX_QUEUED = 10_000  # distinct denials held while the database stays locked
WARN_EVERY_S = 60.0  # at most one warning of each kind per period


@dataclass
class _Written:
    audit_id: int
    at: float


class DenialRecorder:
    """Thread-safe: services decide on ownership inside database threads and record there.

    Counters (for logs and metrics): ``dropped``, denials refused because the queue was
    full; ``placeholders``, denials audited by a placeholder row; ``lost``, denials not
    audited at all (neither row nor placeholder could be stored, or the database was
    unavailable when the recorder closed).
    """

    def __init__(self, audit: AuditStore) -> None:
        self.audit = audit
        self._queued: dict[Denial, int] = {}
        self._written: dict[Denial, _Written] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self._writing: asyncio.Task[Exception | None] | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        self._closed = False
        self.dropped = 0
        self.placeholders = 0
        self.lost = 0
        self._full_warning = Throttle(WARN_EVERY_S)
        self._retry_warning = Throttle(WARN_EVERY_S)

    def record(self, denial: Denial) -> None:
        """Queue ``denial`` (never blocks); a flush is scheduled on the event loop."""
        denial = storable_denial(denial)
        with self._lock:
            full = denial not in self._queued and len(self._queued) >= MAX_QUEUED
            if full:
                self.dropped += 1
            else:
                self._queued[denial] = self._queued.get(denial, 0) + 1
        if full:
            if (held := self._full_warning.ready()) is not None:
                log.warning(
                    "%d distinct denied operations wait to be audited; %d more not audited",
                    MAX_QUEUED,
                    held + 1,
                )
            return
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
        if self._closed or (self._flush_task is not None and not self._flush_task.done()):
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # no loop: flush() writes them later
        self._flush_task = loop.create_task(self._flush_soon(), name="audit-denials")

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_DELAY_S)
        delay = RETRY_S
        while self._queued:
            try:
                await self.flush()
                delay = RETRY_S
            except AbathurError as exc:  # locked, down or closed: keep them, try again
                if (held := self._retry_warning.ready()) is not None:
                    log.warning(
                        "%d denied operation(s) not audited yet (%s); retrying%s",
                        sum(self._queued.values()),
                        exc,
                        f" ({held} more failed attempts)" if held else "",
                    )
                await asyncio.sleep(delay)
                delay = min(MAX_RETRY_S, delay * 2)

    async def flush(self) -> None:
        """Write what is queued. Safe to call at any time. Raises Unavailable when the
        database cannot be written now (the unwritten denials stay queued)."""
        while (running := self._writing) is not None and not running.done():
            await asyncio.shield(running)  # one write at a time
        with self._lock:
            if not self._queued:
                return
            batch, self._queued = self._queued, {}
        write = asyncio.get_running_loop().create_task(self._write(batch), name="audit-write")
        self._writing = write
        failure = await asyncio.shield(write)  # a cancelled caller leaves the write running
        if failure is not None:
            raise failure

    async def _write(self, batch: dict[Denial, int]) -> Exception | None:
        """Write ``batch``; returns (never raises) the Unavailable that stopped it, if any."""
        now = time.monotonic()
        recent = {d: i for d in batch if (i := self._recent_id(d, now)) is not None}
        try:
            ids = await self.audit.write_denials(batch, recent)
        except Unavailable as exc:
            self._requeue(batch)
            return exc
        except Exception as exc:  # the database refused a row: the others must not sink
            log.warning(
                "auditing %d denied operation(s) in one transaction failed (%s); "
                "writing them one at a time",
                len(batch),
                _reason(exc),
            )
            return await self._write_each(batch, recent, now)
        except BaseException:  # this task itself cancelled (the loop is going away)
            self._requeue(batch)
            raise
        self._remember(ids, now)
        return None

    async def _write_each(
        self, batch: dict[Denial, int], recent: dict[Denial, int], now: float
    ) -> Exception | None:
        items = list(batch.items())
        for n, (denial, count) in enumerate(items):
            prior = {denial: recent[denial]} if denial in recent else {}
            try:
                self._remember(await self.audit.write_denials({denial: count}, prior), now)
                continue
            except Unavailable as exc:
                self._requeue(dict(items[n:]))
                return exc
            except Exception as exc:
                reason = _reason(exc)
            stand_in = placeholder_for(denial, reason)
            previous = self._recent_id(stand_in, now)
            try:
                ids = await self.audit.write_denials(
                    {stand_in: count}, {} if previous is None else {stand_in: previous}
                )
            except Unavailable as exc:
                self._requeue(dict(items[n:]))
                return exc
            except Exception as exc:
                self.lost += count
                log.error(
                    "a denied operation (%s by %s) was not audited: neither its row (%s) nor a "
                    "placeholder (%s) could be stored",
                    stand_in.action,
                    stand_in.actor,
                    reason,
                    _reason(exc),
                )
                continue
            self._remember(ids, now)
            self.placeholders += count
            log.warning(
                "a denied operation (%s by %s) is audited by a placeholder row: its own row "
                "could not be stored (%s)",
                stand_in.action,
                stand_in.actor,
                reason,
            )
        return None

    def _recent_id(self, denial: Denial, now: float) -> int | None:
        written = self._written.get(denial)
        return written.audit_id if written and now - written.at < FOLD_WINDOW_S else None

    def _remember(self, ids: dict[Denial, int], now: float) -> None:
        self._written = {d: w for d, w in self._written.items() if now - w.at < FOLD_WINDOW_S}
        for denial, audit_id in ids.items():
            self._written[denial] = _Written(audit_id, now)

    def _requeue(self, batch: dict[Denial, int]) -> None:
        with self._lock:
            for denial, count in batch.items():
                self._queued[denial] = self._queued.get(denial, 0) + count

    async def close(self) -> None:
        """Stop the background flush and write what is left (waiting for a write under way)."""
        self._closed = True
        if self._flush_task is not None:
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flush_task
        try:
            await self.flush()
        except AbathurError as exc:
            with self._lock:
                lost, self._queued = sum(self._queued.values()), {}
            self.lost += lost
            log.warning("%d denied operation(s) were not audited before closing (%s)", lost, exc)


def _reason(exc: BaseException) -> str:
    """One line saying why a write failed (the error's own text is the database's)."""
    text = str(exc).strip().splitlines()
    kind = exc.code if isinstance(exc, AbathurError) else type(exc).__name__
    return f"{kind}: {text[0]}" if text else kind
