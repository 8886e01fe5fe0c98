"""Link tools: typed, directed links between memories (part of the ``memory`` group)."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from pydantic import BaseModel, Field

from abathur_memory.core.records import MemoryLink
from abathur_memory.server.context import MAX_INT, acting
from abathur_memory.server.registry import strict_tool, writes

PlainNamespace = Annotated[str, Field(min_length=3, max_length=512)]
PlainKey = Annotated[str, Field(min_length=1, max_length=256)]
LinkType = Literal["supersedes", "contradicts", "duplicates", "derived_from", "related"]


class LinkResult(BaseModel):
    link: MemoryLink
    created: bool = Field(description="False when an equal active link already existed.")


class UnlinkResult(BaseModel):
    link: MemoryLink = Field(description="The link, now stamped removed (it stays readable).")


async def memory_link(
    ctx: Context,
    from_namespace: PlainNamespace,
    from_key: PlainKey,
    link_type: LinkType,
    to_namespace: PlainNamespace,
    to_key: PlainKey,
    reason: str | None = None,  # at most 2,000 characters (memory/links.py checks)
) -> LinkResult:
    """Link memory A (from) to B (to), with write access to both. supersedes: B is
    outdated and hidden; duplicates: A is hidden; contradicts: both are marked."""
    runtime, principal = acting(ctx)
    link, created = await runtime.links.link(
        principal, link_type, from_namespace, from_key, to_namespace, to_key, reason
    )
    return LinkResult(link=link, created=created)


async def memory_unlink(
    ctx: Context,
    link_id: Annotated[int, Field(ge=1, le=MAX_INT)],
) -> UnlinkResult:
    """Remove a link (stamped removed, never deleted)."""
    runtime, principal = acting(ctx)
    return UnlinkResult(link=await runtime.links.unlink(principal, link_id))


def tools() -> list[Tool]:
    return [
        strict_tool(memory_link, title="Link two memories", annotations=writes(idempotent=True)),
        strict_tool(memory_unlink, title="Remove a link", annotations=writes(idempotent=False)),
    ]
