"""Document tools: document_search, document_get, index_status, index_refresh."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from pydantic import BaseModel, Field

from abathur_memory.core.replies import absent
from abathur_memory.documents.reports import DocumentText, IndexReport, IndexStatus
from abathur_memory.documents.service import DocumentService
from abathur_memory.search.results import OMITTED, Filters, Hit
from abathur_memory.server.context import MAX_INT, principal_for, runtime_of
from abathur_memory.server.registry import READ_ONLY, strict_tool, writes

Mode = Literal["hybrid", "keyword", "semantic"]
Query = Annotated[str, Field(min_length=1, max_length=2000, description="What to look for.")]
K = Annotated[int, Field(ge=1, le=100, description="How many results.")]


def documents_of(ctx: Context) -> DocumentService:
    return runtime_of(ctx).documents


class DocumentResults(BaseModel):
    query: str
    mode_used: str = Field(description="hybrid, keyword or semantic: what actually ran.")
    degraded: str | None = Field(description="Why the search ran in a lesser mode, if it did.")
    model: str | None
    results: list[Hit]
    omitted: int | None = Field(default=None, exclude_if=absent, description=OMITTED)


async def document_search(
    ctx: Context,
    query: Query,
    k: K = 10,
    mode: Mode = "hybrid",
    root: Annotated[str | None, Field(max_length=128, description="Only this root.")] = None,
    path_glob: Annotated[
        str | None, Field(max_length=512, description="Only paths matching, e.g. 'notes/*.md'.")
    ] = None,
    tags: Annotated[
        list[Annotated[str, Field(max_length=64)]] | None,
        Field(max_length=20, description="Only documents with all these front-matter tags."),
    ] = None,
    document_type: Annotated[str | None, Field(max_length=64)] = None,
) -> DocumentResults:
    """Search the user's indexed markdown by meaning and keywords. Returns sections with
    their path, heading, line range and a snippet; read more with document_get."""
    filters = Filters(root=root, path_glob=path_glob, tags=tags or [], document_type=document_type)
    result = await documents_of(ctx).search(principal_for(ctx), query, k, mode, filters)
    return DocumentResults(
        query=result.query,
        mode_used=result.mode_used,
        degraded=result.degraded,
        model=result.model,
        results=result.results,
        omitted=result.omitted,
    )


async def document_get(
    ctx: Context,
    path: Annotated[
        str, Field(min_length=1, max_length=1024, description="'<root>/<file>' as search returns.")
    ],
    start_line: Annotated[int | None, Field(ge=1, le=MAX_INT)] = None,
    end_line: Annotated[int | None, Field(ge=1, le=MAX_INT)] = None,
) -> DocumentText:
    """Read an indexed document, or lines start_line..end_line of it (1-based, inclusive).
    A long range stops early: go on from next_start_line."""
    return await documents_of(ctx).get(principal_for(ctx), path, start_line, end_line)


async def index_status(ctx: Context) -> IndexStatus:
    """The state of the document index: folders, documents per state, model, pending work,
    failures and whether the watcher is alive and keeping up."""
    return await documents_of(ctx).status(principal_for(ctx))


async def index_refresh(
    ctx: Context,
    path: Annotated[
        str | None,
        Field(max_length=1024, description="A root name or '<root>/<file>'; omit for all."),
    ] = None,
) -> IndexReport:
    """Re-scan the indexed folders now and index what changed (a root, one file, or all)."""
    return await documents_of(ctx).refresh(principal_for(ctx), path)


def tools() -> list[Tool]:
    return [
        strict_tool(document_search, title="Search documents", annotations=READ_ONLY),
        strict_tool(document_get, title="Read a document", annotations=READ_ONLY),
        strict_tool(index_status, title="Index status", annotations=READ_ONLY),
        strict_tool(index_refresh, title="Refresh the index", annotations=writes(idempotent=True)),
    ]
