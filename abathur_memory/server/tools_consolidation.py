"""memory_consolidate: proposals, applying them, undoing a run (part of the ``memory``
group)."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from pydantic import Field

from abathur_memory.memory.consolidation import ConsolidationReport
from abathur_memory.server.context import acting
from abathur_memory.server.registry import strict_tool, writes


async def memory_consolidate(
    ctx: Context,
    prefix: Annotated[str, Field(min_length=3, max_length=512)],
    dry_run: bool = True,
    apply: list[str] | None = None,
    min_confidence: Annotated[float | None, Field(ge=0, le=1)] = None,
    undo: Annotated[str | None, Field(max_length=64)] = None,
) -> ConsolidationReport:
    """Propose duplicates, updates and clusters under prefix; dry_run=false applies apply
    ids or all of min_confidence (links, new memories); undo reverts."""
    runtime, principal = acting(ctx)
    if undo is not None:
        return await runtime.consolidation.undo(principal, undo)
    return await runtime.consolidation.consolidate(
        principal, prefix, dry_run=dry_run, apply=apply, min_confidence=min_confidence
    )


def tools() -> list[Tool]:
    return [
        strict_tool(memory_consolidate, title="Consolidate", annotations=writes()),
    ]
