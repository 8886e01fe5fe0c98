"""Building the MCP server: services opened once in the lifespan, tool groups, resources."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.tools.base import Tool

from abathur_memory import __version__
from abathur_memory.config import Settings
from abathur_memory.errors import AbathurError, NotFound
from abathur_memory.memory.services import Services
from abathur_memory.server import tools_memory, tools_sessions, tools_tasks
from abathur_memory.server.context import AppContext, services_of

log = logging.getLogger(__name__)

MAINTENANCE_FIRST_DELAY_S = 60

TOOL_GROUPS = {
    "memory": tools_memory.tools,
    "sessions": tools_sessions.tools,
    "tasks": tools_tasks.tools,
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


def create_server(settings: Settings) -> MCPServer[AppContext]:
    """The server for ``settings``; the database is opened when a client connects."""

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[AppContext]) -> AsyncIterator[AppContext]:
        services = await Services.open(settings)
        maintenance = _start_maintenance(services, settings)
        log.info("serving %s as %s", settings.db, services.principal.actor)
        try:
            yield AppContext(settings=settings, services=services)
        finally:
            if maintenance is not None:
                maintenance.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await maintenance
            await services.close()

    server: MCPServer[AppContext] = MCPServer(
        name="abathur-memory",
        title="abathur-memory",
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=build_tools(set(settings.disabled_tools)),
        lifespan=lifespan,
        log_level=settings.log_level,  # type: ignore[arg-type]
    )
    if "memory" not in settings.disabled_tools:
        _add_memory_resource(server)
    if "sessions" not in settings.disabled_tools:
        _add_session_resource(server)
    return server


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


async def _resource_call(awaitable: Any) -> Any:
    try:
        return await awaitable
    except NotFound as exc:
        raise ResourceNotFoundError(str(exc)) from None
    except AbathurError as exc:
        raise ResourceError(f"{exc.code}: {exc}") from None


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
