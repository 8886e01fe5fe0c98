"""Who a tool call acts for, on which runtime, and the argument types tools share."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from abathur_memory.core.principal import Principal
from abathur_memory.core.values import JsonAny
from abathur_memory.errors import Unavailable
from abathur_memory.runtime import Runtime
from abathur_memory.server.auth import principal_of


def runtime_of(ctx: Context) -> Runtime:
    runtime = ctx.request_context.lifespan_context
    if not isinstance(runtime, Runtime):  # pragma: no cover - the lifespan always sets it
        raise Unavailable("the server is not initialised")
    return runtime


def principal_for(ctx: Context) -> Principal:
    """The token's principal over HTTP; the server's own on stdio."""
    return principal_of(ctx.request_context, runtime_of(ctx).principal)


def acting(ctx: Context) -> tuple[Runtime, Principal]:
    """The runtime and who this call acts for: what every tool starts with."""
    return runtime_of(ctx), principal_for(ctx)


# -- argument types (limits become the JSON schema clients see) --------------------------

MAX_INT = 2**63 - 1  # SQLite integers are 64-bit: a larger number is invalid input, not a crash

Namespace = Annotated[
    str,
    Field(
        min_length=3,
        max_length=512,
        description=(
            "'<scope>:<id>[:...]', scope app|user|project|session|temp, e.g. 'user:alice:prefs'"
        ),
    ),
]
Prefix = Annotated[
    str,
    Field(
        min_length=3,
        max_length=512,
        description=(
            "On ':' boundaries: 'user:alice' matches 'user:alice:prefs', not 'user:alice2'; "
            "'temp' lists every temp namespace."
        ),
    ),
]
Key = Annotated[str, Field(min_length=1, max_length=256, description="Key within the namespace.")]
JsonValue = JsonAny  # its schema lists the six JSON types: a description would repeat it
JsonObject = dict[str, Any]
MemoryType = Literal["semantic", "episodic", "procedural"]
Cursor = Annotated[
    str | None,
    Field(max_length=2048, description="The previous page's next_cursor."),
]
