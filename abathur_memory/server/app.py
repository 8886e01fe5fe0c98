"""Building the MCP server: services opened once in the lifespan, tool groups, resources."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools.base import Tool
from mcp.shared.exceptions import MCPError

from abathur_memory import __version__
from abathur_memory.config import Settings
from abathur_memory.errors import AbathurError
from abathur_memory.indexer.documents import DocumentService
from abathur_memory.indexer.embedders.factory import make_embedder
from abathur_memory.indexer.memory_index import MemoryIndexer
from abathur_memory.indexer.memory_search import MemorySearch
from abathur_memory.indexer.vector_index import VectorIndex
from abathur_memory.memory.denials import Denial
from abathur_memory.memory.namespaces import Principal
from abathur_memory.memory.services import Services
from abathur_memory.memory.tokens import TokenService
from abathur_memory.server import tools_documents, tools_memory, tools_sessions, tools_tasks
from abathur_memory.server.auth import DatabaseTokenVerifier
from abathur_memory.server.context import AppContext, services_of
from abathur_memory.server.http import auth_kwargs

log = logging.getLogger(__name__)

MAINTENANCE_FIRST_DELAY_S = 60

TOOL_GROUPS = {
    "memory": tools_memory.tools,
    "sessions": tools_sessions.tools,
    "tasks": tools_tasks.tools,
    "documents": tools_documents.tools,
}

INSTRUCTIONS = """\
abathur-memory is a durable memory. Save facts, preferences and decisions with memory_put
under a namespace: 'user:<you>:...' for the user, 'project:<project>:...' for the project,
'session:<id>:...' for one session, 'temp:...' for scratch; 'app:...' holds read-only
application guidance. Recall with memory_get or browse with memory_list (prefix matching on
':' boundaries). Every change is versioned (memory_history) and deletes can be undone
(memory_restore). Sessions keep an ordered event log and a state; tasks form a queue that
agents claim with task_claim. Errors start with their kind: invalid_input, not_found,
conflict (re-read and retry), forbidden, unavailable (try again later).
"""


def build_tools(disabled: set[str]) -> list[Tool]:
    tools: list[Tool] = []
    for group, make in TOOL_GROUPS.items():
        if group not in disabled:
            tools.extend(make())
    return tools


def create_server(
    settings: Settings, *, verifier: DatabaseTokenVerifier | None = None, port: int = 8765
) -> MCPServer[AppContext]:
    """The server for ``settings``; the database is opened when a client connects.

    With a ``verifier`` (HTTP), every request needs a bearer token and acts as its principal.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[AppContext]) -> AsyncIterator[AppContext]:
        services = await Services.open(settings)
        if verifier is not None:
            verifier.tokens = TokenService(services.db)
        app = AppContext(settings=settings, services=services)
        disabled = set(settings.disabled_tools)
        embedder = make_embedder(settings) if {"memory", "documents"} - disabled else None
        cache = VectorIndex()
        if "documents" not in disabled:
            app.documents = DocumentService(
                services.db, embedder, max_file_bytes=settings.max_file_bytes, cache=cache
            )
            app.documents.on_denied = _document_denials(services)
            for spec in settings.docs:
                try:
                    registered = await app.documents.add_root(
                        spec, tuple(settings.exclude), owner=services.principal
                    )
                    for note in registered.notes:
                        log.warning("%s", note)
                except AbathurError as exc:
                    log.warning("document root %s skipped: %s", spec, exc)
        if "memory" not in disabled:
            app.memory_search = MemorySearch(services.db, embedder, cache)
        tasks = [t for t in (_start_maintenance(services, settings),) if t is not None]
        stop_indexing = asyncio.Event()
        if "memory" not in disabled:
            indexer = MemoryIndexer(services.db, embedder)
            app.on_memory_change.append(indexer.wake)
            services.memories.on_change.append(indexer.wake)
            tasks.append(asyncio.create_task(indexer.run(stop_indexing), name="memory-index"))
        stop_watching = asyncio.Event()
        if settings.watch and app.documents is not None:
            tasks.append(asyncio.create_task(_watch(app.documents, settings, stop_watching)))
        elif settings.docs and app.documents is not None and embedder is not None:
            # --docs without --watch: bring those folders up to date once, in the background.
            tasks.append(asyncio.create_task(_index_once(app.documents), name="index-docs"))
        log.info("serving %s as %s", settings.db, services.principal.actor)
        try:
            yield app
        finally:
            stop_watching.set()
            stop_indexing.set()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if embedder is not None:
                await embedder.close()
            await services.close()

    server: MCPServer[AppContext] = MCPServer(
        name="abathur-memory",
        title="abathur-memory",
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=build_tools(set(settings.disabled_tools)),
        lifespan=lifespan,
        log_level=settings.log_level,  # type: ignore[arg-type]
        **auth_kwargs(verifier, "127.0.0.1", port),
    )
    if "memory" not in settings.disabled_tools:
        _add_memory_resource(server)
    if "sessions" not in settings.disabled_tools:
        _add_session_resource(server)
    return server


def _document_denials(services: Services) -> Any:
    def record(principal: Principal, action: str, target: str, rule: str) -> None:
        services.recorder.record(Denial(principal.actor, "document_denied", action, target, rule))

    return record


def _add_memory_resource(server: MCPServer[AppContext]) -> None:
    @server.resource(
        "memory://{namespace}/{key}",
        name="memory",
        description="The latest live version of one memory, as JSON.",
        mime_type="application/json",
    )
    async def memory_resource(namespace: str, key: str, ctx: Context) -> str:
        entry = await _resource_call(services_of(ctx).memories.get(namespace, key))
        return _json(entry.as_dict())


def _add_session_resource(server: MCPServer[AppContext]) -> None:
    @server.resource(
        "session://{session_id}",
        name="session",
        description="A session with its state and its latest 50 events, as JSON.",
        mime_type="application/json",
    )
    async def session_resource(session_id: str, ctx: Context) -> str:
        session = await _resource_call(services_of(ctx).sessions.get(session_id))
        return _json(session.as_dict())


# JSON-RPC codes for resource reads: MCP's "resource not found", invalid params, and
# implementation-defined server errors (-32000..-32099) for the kinds JSON-RPC lacks.
RESOURCE_ERROR_CODES = {
    "not_found": -32002,
    "invalid_input": -32602,
    "forbidden": -32003,
    "conflict": -32004,
    "unavailable": -32005,
    "read_only": -32006,
}


async def _resource_call(awaitable: Any) -> Any:
    """Our errors as JSON-RPC errors whose message starts with the kind (never -32603)."""
    try:
        return await awaitable
    except AbathurError as exc:
        raise MCPError(
            code=RESOURCE_ERROR_CODES.get(exc.code, -32000),
            message=f"{exc.code}: {exc}",
            data={"kind": exc.code},
        ) from None


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)


def _start_maintenance(services: Services, settings: Settings) -> asyncio.Task[None] | None:
    hours = settings.maintenance_interval_hours
    if hours <= 0:
        return None

    async def loop() -> None:
        await asyncio.sleep(MAINTENANCE_FIRST_DELAY_S)  # let start-up and the first calls go first
        while True:
            try:
                await services.lifecycle.run()
            except Exception as exc:  # a failed round must not stop the next ones
                log.warning("lifecycle maintenance failed: %s", exc)
            await asyncio.sleep(hours * 3600)

    return asyncio.create_task(loop(), name="abathur-maintenance")


async def _index_once(documents: DocumentService) -> None:
    try:
        report = await documents.index()
        if report.work:
            log.info("indexed the document folders: %s", report.work.as_dict())
    except (AbathurError, OSError) as exc:
        log.warning("indexing the document folders failed: %s", exc)


async def _watch(documents: DocumentService, settings: Settings, stop: asyncio.Event) -> None:
    from abathur_memory.indexer.watcher import Watcher

    watcher = Watcher(documents, debounce_ms=settings.watch_debounce_ms, kind="server")
    await watcher.run(stop)
