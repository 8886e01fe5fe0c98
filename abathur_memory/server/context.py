"""What the lifespan opens once and every tool call uses, and the argument types tools share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from abathur_memory.config import Settings
from abathur_memory.errors import Unavailable
from abathur_memory.indexer.documents import DocumentService
from abathur_memory.indexer.memory_search import MemorySearch
from abathur_memory.memory.services import Services
from abathur_memory.memory.values import JsonAny


@dataclass
class AppContext:
    settings: Settings
    services: Services
    documents: DocumentService | None = None
    memory_search: MemorySearch | None = None


def app_of(ctx: Context) -> AppContext:
    app = ctx.request_context.lifespan_context
    if not isinstance(app, AppContext):  # pragma: no cover - the lifespan always sets it
        raise Unavailable("the server is not initialised")
    return app


def services_of(ctx: Context) -> Services:
    return app_of(ctx).services


def memory_search_of(ctx: Context) -> MemorySearch:
    search = app_of(ctx).memory_search
    if search is None:  # pragma: no cover - the tool is only offered with the memory group
        raise Unavailable("memory tools are not enabled on this server")
    return search


# -- argument types (limits become the JSON schema clients see) --------------------------

Namespace = Annotated[
    str,
    Field(
        min_length=3,
        max_length=512,
        description=(
            "Hierarchical namespace '<scope>:<id>[:<more>...]', scope one of app, user, "
            "project, session, temp; e.g. 'user:alice:preferences', 'project:website:decisions'."
        ),
    ),
]
Prefix = Annotated[
    str,
    Field(
        min_length=3,
        max_length=512,
        description=(
            "Namespace prefix; matches that namespace and everything below it on ':' "
            "boundaries ('user:alice' matches 'user:alice:prefs', not 'user:alice2'). "
            "A bare 'temp' lists all temp namespaces."
        ),
    ),
]
Key = Annotated[str, Field(min_length=1, max_length=256, description="Key within the namespace.")]
JsonValue = Annotated[
    JsonAny, Field(description="Any JSON value: object, array, string, number, boolean or null.")
]
JsonObject = dict[str, Any]
MemoryType = Literal["semantic", "episodic", "procedural"]
Cursor = Annotated[
    str | None,
    Field(max_length=2048, description="next_cursor from the previous page; omit for the first."),
]
Identifier = Annotated[str, Field(min_length=1, max_length=256)]
