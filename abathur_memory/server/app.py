"""Building the MCP server from the runtime: tool groups, resources, the lifespan that opens
the runtime once for the whole connection (stdio) or server (HTTP)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools.base import Tool
from mcp.shared.exceptions import MCPError

from abathur_memory import __version__
from abathur_memory.config import Settings
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import MemoryRecord
from abathur_memory.errors import AbathurError
from abathur_memory.runtime import Runtime, open_runtime
from abathur_memory.server import (
    tools_consolidation,
    tools_documents,
    tools_links,
    tools_memory,
    tools_sessions,
    tools_tasks,
)
from abathur_memory.server.auth import DatabaseTokenVerifier
from abathur_memory.server.context import acting
from abathur_memory.server.http import auth_kwargs
from abathur_memory.server.stdio import StdioServer
from abathur_memory.server.web import Holder, metrics_endpoint

log = logging.getLogger(__name__)

TOOL_GROUPS = {
    "memory": lambda: [
        *tools_memory.tools(),
        *tools_links.tools(),
        *tools_consolidation.tools(),
    ],
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
) -> MCPServer[Runtime]:
    """The server for ``settings``; the runtime is opened when the server starts.

    With a ``verifier`` (HTTP), every request needs a bearer token and acts as its principal,
    and the server also answers ``/metrics`` and the console at ``/ui`` (server/web.py).
    """
    holder = Holder(port=port)

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[Runtime]) -> AsyncIterator[Runtime]:
        async with open_runtime(settings) as runtime:
            if verifier is not None:
                verifier.tokens = runtime.tokens
            holder.runtime = runtime
            await runtime.start_serving()
            log.info("serving %s as %s", runtime.store.location, runtime.principal.actor)
            yield runtime

    server: MCPServer[Runtime] = StdioServer(
        name="abathur-memory",
        title="abathur-memory",
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=build_tools(set(settings.disabled_tools)),
        lifespan=lifespan,
        log_level=settings.log_level,  # type: ignore[arg-type]
        **auth_kwargs(verifier, "127.0.0.1", port),
    )
    if verifier is not None:
        server.custom_route("/metrics", methods=["GET"])(metrics_endpoint(holder))
        from abathur_memory.server.console.app import Console

        server._custom_starlette_routes.extend(Console(holder).routes())
    if "memory" not in settings.disabled_tools:
        _add_memory_resource(server)
    if "sessions" not in settings.disabled_tools:
        _add_session_resource(server)
    return server


def _add_memory_resource(server: MCPServer[Runtime]) -> None:
    @server.resource(
        "memory://{namespace}/{key}",
        name="memory",
        description="The latest live version of one memory, as JSON.",
        mime_type="application/json",
    )
    async def memory_resource(namespace: str, key: str, ctx: Context) -> str:
        runtime, principal = acting(ctx)
        entry = await _resource_call(
            runtime, principal, "memory", runtime.memories.get(principal, namespace, key)
        )
        return _json(MemoryRecord.of(entry).model_dump())


def _add_session_resource(server: MCPServer[Runtime]) -> None:
    @server.resource(
        "session://{session_id}",
        name="session",
        description="A session with its state and its latest 50 events, as JSON.",
        mime_type="application/json",
    )
    async def session_resource(session_id: str, ctx: Context) -> str:
        runtime, principal = acting(ctx)
        session = await _resource_call(
            runtime,
            principal,
            "session",
            runtime.sessions.get(principal, session_id, events_after=-1),
        )
        return _json(session.model_dump())


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


async def _resource_call(
    runtime: Runtime, principal: Principal, resource: str, awaitable: Any
) -> Any:
    """Our errors as JSON-RPC errors whose message starts with the kind (never -32603); the
    read counted in the metrics as ``resource:<name>``, like a tool call."""
    started = time.perf_counter()
    outcome = "internal_error"
    try:
        result = await awaitable
        outcome = "ok"
        return result
    except AbathurError as exc:
        outcome = exc.code
        raise MCPError(
            code=RESOURCE_ERROR_CODES.get(exc.code, -32000),
            message=f"{exc.code}: {exc}",
            data={"kind": exc.code},
        ) from None
    finally:
        latency_ms = (time.perf_counter() - started) * 1000
        rows = 1 if outcome == "ok" else None
        runtime.call_metrics.record(
            f"resource:{resource}", principal.actor, outcome, latency_ms, rows
        )


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
