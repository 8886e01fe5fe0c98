"""The one composition root: settings → store → services → search → background workers.

``serve``, every command and the tests build what they use through :func:`open_runtime`;
nothing else wires. Every field of :class:`Runtime` is required: a switched-off tool group
only hides tools, it never leaves a service missing, so no caller checks for ``None``.
Opening migrates the database (``migrate=False`` leaves an old file as it is, for the
doctor), and closing stops the background workers before the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import click

from abathur_memory.chat.factory import make_chat_model
from abathur_memory.config import Settings, default_db_path
from abathur_memory.core.principal import Principal
from abathur_memory.core.replies import Bounds
from abathur_memory.documents.service import DocumentService
from abathur_memory.embedders.base import Embedder
from abathur_memory.embedders.factory import make_embedder
from abathur_memory.errors import AbathurError
from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.browse import BrowseService
from abathur_memory.memory.checkpoints import CheckpointService
from abathur_memory.memory.consolidation import ConsolidationService
from abathur_memory.memory.denials import DenialRecorder
from abathur_memory.memory.lifecycle import LifecycleService
from abathur_memory.memory.links import LinkService
from abathur_memory.memory.memories import MemoryService
from abathur_memory.memory.metrics import MetricsRecorder, MetricsService
from abathur_memory.memory.model_help import ModelHelp
from abathur_memory.memory.promotion import PromotionService
from abathur_memory.memory.redaction import RedactionService
from abathur_memory.memory.sessions import SessionService
from abathur_memory.memory.tasks import TaskService
from abathur_memory.memory.tokens import TokenService
from abathur_memory.search.memory_indexer import MemoryIndexer
from abathur_memory.search.pipeline import Retrieval
from abathur_memory.store.open import open_store
from abathur_memory.store.protocols import Store
from abathur_memory.transfer.service import TransferService

log = logging.getLogger(__name__)

MAINTENANCE_FIRST_DELAY_S = 60


def principal_of(settings: Settings) -> Principal:
    """The configured principal: the server's own on stdio, the commands'."""
    return Principal(
        user=settings.user, app=settings.app, project=settings.project, admin=settings.admin
    )


@dataclass
class Runtime:
    settings: Settings
    store: Store
    principal: Principal  # the configured one (stdio, commands); HTTP requests bring theirs
    recorder: DenialRecorder
    guard: AccessGuard
    memories: MemoryService
    sessions: SessionService
    tasks: TaskService
    checkpoints: CheckpointService
    tokens: TokenService
    lifecycle: LifecycleService
    embedder: Embedder
    documents: DocumentService
    retrieval: Retrieval
    memory_indexer: MemoryIndexer
    transfer: TransferService
    metrics: MetricsService
    call_metrics: MetricsRecorder
    browse: BrowseService
    links: LinkService
    consolidation: ConsolidationService
    redaction: RedactionService
    promotion: PromotionService
    model_help: ModelHelp  # the optional chat model (none configured: it never asks)
    _workers: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self, name: str, work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        """Run ``work(stop)`` in the background until the runtime closes."""
        self._workers.append(asyncio.create_task(work(self._stop), name=name))

    async def start_serving(self) -> None:
        """The background work of a server: memory indexing, lifecycle maintenance, the
        document folders (indexed once, or watched)."""
        self.start("memory-index", self.memory_indexer.run)
        check = getattr(self.store, "check_vector_indexes", None)  # SQLite's derived ANN index
        if check is not None:
            await check()
        if self.settings.embedder_idle_unload_s > 0:
            self.start("embedder-idle", self._unload_idle_model)
        if self.settings.maintenance_interval_hours > 0:
            self.start("maintenance", self._maintenance)
        if self.settings.metrics:
            self.start("maintenance-metrics", self._roll_up_metrics)
        for spec in self.settings.docs:
            try:
                registered = await self.documents.add_root(
                    spec, tuple(self.settings.exclude), owner=self.principal
                )
                for note in registered.notes:
                    log.warning("%s", note)
            except AbathurError as exc:
                log.warning("document root %s skipped: %s", spec, exc)
        if self.settings.watch:
            self.start("watch", self.watch)
        elif self.settings.docs:
            self.start("index-docs", self._index_once)
        else:
            needed = await self.documents.rebuild_needed()
            if needed is not None:  # e.g. a database of an older release: rebuild it now
                log.warning("%s", needed)
                self.start("index-docs", self._index_once)

    async def _maintenance(self, stop: asyncio.Event) -> None:
        delay: float = MAINTENANCE_FIRST_DELAY_S  # let start-up and the first calls go first
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            try:
                await self.lifecycle.run()
            except Exception as exc:  # a failed round must not stop the next ones
                log.warning("lifecycle maintenance failed: %s", exc)
            delay = self.settings.maintenance_interval_hours * 3600

    async def _roll_up_metrics(self, stop: asyncio.Event) -> None:
        """The maintenance worker's metrics round: calls older than metrics_raw_hours become
        per-minute rows, minutes older than metrics_retention_days are dropped."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.metrics_rollup_minutes * 60)
            if stop.is_set():
                return
            try:
                await self.roll_up_metrics()
            except Exception as exc:  # a failed round must not stop the next ones
                log.warning("rolling up metrics failed: %s", exc)

    async def roll_up_metrics(self) -> tuple[int, int]:
        await self.call_metrics.flush()
        return await self.metrics.compact(
            self.settings.metrics_raw_hours, self.settings.metrics_retention_days
        )

    async def _unload_idle_model(self, stop: asyncio.Event) -> None:
        """Free the embedding model once it has been idle for embedder_idle_unload_s (the
        embedder decides, under its lock, so an embedding in progress keeps it)."""
        period = min(60.0, max(0.05, self.settings.embedder_idle_unload_s / 4))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
            if not stop.is_set() and self.embedder.loaded:
                await asyncio.to_thread(self.embedder.unload_if_idle)

    async def _index_once(self, stop: asyncio.Event) -> None:
        try:
            report = await self.documents.index()
            if report.work:
                log.info("indexed the document folders: %s", report.work.model_dump())
        except (AbathurError, OSError) as exc:
            log.warning("indexing the document folders failed: %s", exc)

    async def watch(self, stop: asyncio.Event, *, kind: str = "server") -> None:
        """Keep the document roots indexed until ``stop``: in the background of ``serve
        --watch``, in the foreground of ``watch`` (``kind="watcher"``). The one place a
        watcher is built, so both keep the same settings and services."""
        from abathur_memory.documents.watcher import Watcher

        watcher = Watcher(self.documents, debounce_ms=self.settings.watch_debounce_ms, kind=kind)
        await watcher.run(stop)

    async def close(self) -> None:
        self._stop.set()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.recorder.close()
        await self.call_metrics.close()
        await self.embedder.close()
        await self.model_help.close()
        await self.store.close()


def document_service(
    store: Store,
    embedder: Embedder | None,
    retrieval: Retrieval | None = None,
    *,
    max_file_bytes: int = 10 * 1024 * 1024,
    worker_owner: str | None = None,
    bounds: Bounds | None = None,
) -> DocumentService:
    """The document service over ``store`` with its retrieval pipeline, as build_runtime
    wires it: for an indexing worker of its own (``worker_owner``: tests of two workers on
    one database) without the rest of a runtime."""
    bounds = bounds if bounds is not None else Bounds()
    if retrieval is None:
        retrieval = Retrieval(store.search, store.spaces, embedder, bounds=bounds)
    return DocumentService(
        store,
        embedder,
        retrieval,
        max_file_bytes=max_file_bytes,
        worker_owner=worker_owner,
        bounds=bounds,
    )


async def build_runtime(
    settings: Settings, store: Store, *, embedder: Embedder | None = None
) -> Runtime:
    """Every service over an open store (the store stays the caller's to close on error).
    ``embedder`` replaces the model the settings name (tests and benchmarks bring their
    own), so nothing outside this function wires services by hand."""
    recorder = DenialRecorder(store.audit)
    guard = AccessGuard(store.sessions, recorder)
    bounds = Bounds(settings.max_reply_bytes, settings.max_listed_value_bytes)
    tasks = TaskService(store.tasks, store.sessions, recorder, bounds=bounds)
    embedder = embedder if embedder is not None else make_embedder(settings)
    retrieval = Retrieval(store.search, store.spaces, embedder, bounds=bounds)
    memories = MemoryService(
        store.memories,
        guard,
        retrieval,
        max_value_bytes=settings.max_value_bytes,
        bounds=bounds,
        links=store.links,
    )
    indexer = MemoryIndexer(store.memory_index, store.spaces, embedder)
    memories.on_change.append(indexer.wake)
    documents = document_service(
        store, embedder, retrieval, max_file_bytes=settings.max_file_bytes, bounds=bounds
    )
    documents.on_denied = recorder.record_document_denial
    sessions = SessionService(store.sessions, recorder, bounds=bounds)
    tokens = TokenService(store.tokens)
    links = LinkService(store.links, guard)
    model_help = ModelHelp(make_chat_model(settings), settings.chat_max_calls)
    consolidation = ConsolidationService(
        store.consolidation, memories, links, guard, embedder, model_help
    )
    return Runtime(
        settings=settings,
        store=store,
        principal=principal_of(settings),
        recorder=recorder,
        guard=guard,
        memories=memories,
        sessions=sessions,
        tasks=tasks,
        checkpoints=CheckpointService(store.checkpoints, tasks),
        tokens=tokens,
        lifecycle=LifecycleService(store.memories, store.sessions, consolidation),
        embedder=embedder,
        documents=documents,
        retrieval=retrieval,
        memory_indexer=indexer,
        transfer=TransferService(store, guard, recorder, max_value_bytes=settings.max_value_bytes),
        metrics=MetricsService(store.metrics, embedder.identity),
        call_metrics=MetricsRecorder(store.metrics, enabled=settings.metrics),
        browse=BrowseService(
            memories,
            store.memories,
            sessions,
            store.sessions,
            store.audit,
            store.documents,
            tokens,
            recorder,
        ),
        links=links,
        redaction=RedactionService(store.redaction, guard, memories._changed),
        promotion=PromotionService(store.sessions, memories, links, guard, model_help),
        consolidation=consolidation,
        model_help=model_help,
    )


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    create: bool = True,
    migrate: bool = True,
    readers: int | None = None,
    embedder: Embedder | None = None,
) -> AsyncIterator[Runtime]:
    """The runtime for ``settings``: the store opened (``create``: a missing database may be
    made; only ``init``, ``index``, ``watch`` and ``serve`` ask for that) and migrated."""
    started = time.perf_counter()
    store = await open_store(
        settings,
        create=create,
        create_dirs=not settings.is_postgres and settings.db_path == default_db_path(),
        readers=readers,
    )
    try:
        if migrate:
            applied = await store.migrate()
            if applied:
                log.info("applied schema migrations %s", applied)
        runtime = await build_runtime(settings, store, embedder=embedder)
    except BaseException:
        await store.close()
        raise
    runtime.call_metrics.enabled = settings.metrics and migrate  # an old schema has no columns
    try:
        yield runtime
    except BaseException as exc:
        _measure_command(runtime, started, exc)
        raise
    else:
        _measure_command(runtime, started, None)
    finally:
        await runtime.close()


LONG_RUNNING = frozenset({"serve", "watch", "ui"})  # measured per call, not as one command


def _measure_command(runtime: Runtime, started: float, failed: BaseException | None) -> None:
    """Record the command this runtime serves as ``cli:<command>``, once per command (a
    command that opens the database twice is measured the first time)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.meta.get("abathur.measured"):
        return
    name = " ".join(ctx.command_path.split()[1:])
    if not name or name.split()[0] in LONG_RUNNING:
        return
    ctx.meta["abathur.measured"] = True
    if failed is None:
        outcome = "ok"
    elif isinstance(failed, AbathurError):
        outcome = failed.code
    else:
        outcome = "interrupted" if isinstance(failed, KeyboardInterrupt) else "internal_error"
    latency_ms = (time.perf_counter() - started) * 1000
    runtime.call_metrics.record(f"cli:{name}", runtime.principal.actor, outcome, latency_ms)
