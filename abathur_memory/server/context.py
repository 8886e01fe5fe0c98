"""What the lifespan opens once and every tool call uses, and the argument types tools share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from abathur_memory.config import Settings
from abathur_memory.core.values import JsonAny
from abathur_memory.errors import Unavailable
from abathur_memory.indexer.documents import DocumentService
from abathur_memory.indexer.memory_search import MemorySearch
from abathur_memory.memory.namespaces import Principal
from abathur_memory.memory.services import Services
from abathur_memory.server.auth import principal_of


@dataclass
class AppContext:
    settings: Settings
    services: Services  # bound to the server's own principal (stdio, CLI)
    documents: DocumentService | None = None
    memory_search: MemorySearch | None = None
    on_memory_change: list[Callable[[], None]] = field(default_factory=list)
    _by_principal: dict[Principal, Services] = field(default_factory=dict)

    def services_for(self, principal: Principal) -> Services:
        """Services acting for ``principal`` over the one open database (made once each)."""
        if principal == self.services.principal:
            return self.services
        found = self._by_principal.get(principal)
        if found is None:
            found = Services.over(
                self.services.db,
                principal,
                max_value_bytes=self.settings.max_value_bytes,
                recorder=self.services.recorder,
            )
            found.memories.on_change.extend(self.on_memory_change)
            self._by_principal[principal] = found
        return found


def app_of(ctx: Context) -> AppContext:
    app = ctx.request_context.lifespan_context
    if not isinstance(app, AppContext):  # pragma: no cover - the lifespan always sets it
        raise Unavailable("the server is not initialised")
    return app


def principal_for(ctx: Context) -> Principal:
    """The token's principal over HTTP; the server's own on stdio."""
    return principal_of(ctx.request_context, app_of(ctx).services.principal)


def services_of(ctx: Context) -> Services:
    return app_of(ctx).services_for(principal_for(ctx))


def memory_search_of(ctx: Context) -> MemorySearch:
    search = app_of(ctx).memory_search
    if search is None:  # pragma: no cover - the tool is only offered with the memory group
        raise Unavailable("memory tools are not enabled on this server")
    return search


# -- argument types (limits become the JSON schema clients see) --------------------------

MAX_INT = 2**63 - 1  # SQLite integers are 64-bit: a larger number is invalid input, not a crash

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
