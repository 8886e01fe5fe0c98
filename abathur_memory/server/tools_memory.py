"""Memory tools: thin wrappers that validate, call one service method, shape the result."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from pydantic import BaseModel, Field

from abathur_memory.core.records import MemoryLink, MemoryRecord, PutResult, trusted
from abathur_memory.core.search_filters import MAX_CONTEXT, MAX_MAX_TOKENS, MIN_MAX_TOKENS
from abathur_memory.search.results import MemorySearchResult
from abathur_memory.server.context import (
    MAX_INT,
    Cursor,
    JsonObject,
    JsonValue,
    Key,
    MemoryType,
    Namespace,
    Prefix,
    acting,
)
from abathur_memory.server.registry import READ_ONLY, strict_tool, writes

M = TypeVar("M", bound=BaseModel)
Time = Annotated[str | None, Field(max_length=64)]
# A namespace already saved to: memory_put's argument describes the form once.
SavedNamespace = Annotated[str, Field(min_length=3, max_length=512)]
SavedKey = Annotated[str, Field(min_length=1, max_length=256)]


def _copy_fields(model: type[M], source: object) -> M:
    """The output model's fields taken from an already validated service object."""
    return trusted(model, {name: getattr(source, name) for name in model.model_fields})


class MemoryPutResult(BaseModel):
    namespace: str
    key: str
    version: int = Field(description="The version now live.")
    memory_type: str
    created: bool = Field(
        description="True when this call wrote a new version (the first one, or a change)."
    )
    unchanged: bool = Field(
        description="True when the value equalled the live one: nothing was written."
    )
    updated_at: str

    @classmethod
    def of(cls, result: PutResult) -> MemoryPutResult:
        return _copy_fields(cls, result)


LINKS_DESCRIPTION = (
    "Its links both ways (from it and to it), removed ones stamped removed_at; only those"
    " whose other end you may read."
)


class MemoryRecall(MemoryRecord):
    """A memory with its links."""

    links: list[MemoryLink] = Field(description=LINKS_DESCRIPTION)


class MemoryHistory(BaseModel):
    namespace: str
    key: str
    versions: list[MemoryRecord] = Field(description="Every version, oldest first.")
    links: list[MemoryLink] = Field(description=LINKS_DESCRIPTION)
    next_cursor: str | None = Field(description="Pass back as cursor for the next page.")


class Redacted(BaseModel):
    namespace: str
    key: str
    version: int
    redacted_at: str
    redacted_by: str


class MemoryDeleted(BaseModel):
    namespace: str
    key: str
    deleted_version: int
    deleted: bool = True


class MemoryList(BaseModel):
    entries: list[MemoryRecord]
    next_cursor: str | None = Field(description="Pass back as cursor for the next page.")


async def memory_put(
    ctx: Context,
    namespace: Namespace,
    key: Key,
    value: JsonValue,
    memory_type: MemoryType = "semantic",
    metadata: JsonObject | None = None,
    expected_version: Annotated[
        int | None,
        Field(
            ge=0,
            le=MAX_INT,
            description="Compare-and-set: the version you read (0: must not exist).",
        ),
    ] = None,
    valid_from: Time = None,
    valid_to: Time = None,
) -> MemoryPutResult:
    """Save a memory under (namespace, key): each change is a new version; the live value
    again writes nothing. metadata omitted keeps the current one. valid_from/valid_to: when
    it holds."""
    runtime, principal = acting(ctx)
    result = await runtime.memories.put(
        principal,
        namespace,
        key,
        value,
        memory_type,
        metadata,
        expected_version,
        valid_from,
        valid_to,
    )
    return MemoryPutResult.of(result)


async def memory_get(
    ctx: Context,
    namespace: SavedNamespace,
    key: SavedKey,
    version: Annotated[int | None, Field(ge=1, le=MAX_INT)] = None,
    as_of: Time = None,
    valid_at: Time = None,
) -> MemoryRecall:
    """Recall one memory (latest, a version, as_of: as the store knew it then; valid_at: the
    one that held then), with its links."""
    runtime, principal = acting(ctx)
    entry = await runtime.memories.get(principal, namespace, key, version, as_of, valid_at)
    links = await runtime.links.readable_links(principal, entry.namespace, entry.key)
    return MemoryRecall(**dict(MemoryRecord.of(entry)), links=links)


async def memory_history(
    ctx: Context,
    namespace: SavedNamespace,
    key: SavedKey,
    limit: Annotated[int, Field(ge=1, le=1000)] = 1000,
    cursor: Cursor = None,
) -> MemoryHistory:
    """Every version of one memory, oldest first (deleted ones flagged), and its links.
    Long values are cut (see truncated)."""
    runtime, principal = acting(ctx)
    page = await runtime.memories.history_page(principal, namespace, key, limit, cursor)
    links = await runtime.links.readable_links(principal, namespace, key)
    return MemoryHistory(
        namespace=namespace,
        key=key,
        versions=[MemoryRecord.of(e) for e in page.entries],
        links=links,
        next_cursor=page.next_cursor,
    )


async def memory_delete(
    ctx: Context,
    namespace: SavedNamespace,
    key: SavedKey,
    expected_version: Annotated[
        int | None,
        Field(ge=1, le=MAX_INT, description="Only if still this version."),
    ] = None,
) -> MemoryDeleted:
    """Delete a memory (soft: its history stays readable and memory_restore can undo it)."""
    runtime, principal = acting(ctx)
    entry = await runtime.memories.delete(principal, namespace, key, expected_version)
    return MemoryDeleted(namespace=namespace, key=key, deleted_version=entry.version)


async def memory_restore(ctx: Context, namespace: SavedNamespace, key: SavedKey) -> MemoryPutResult:
    """Undo a delete: the last value comes back as a new version."""
    runtime, principal = acting(ctx)
    return MemoryPutResult.of(await runtime.memories.restore(principal, namespace, key))


async def memory_redact(
    ctx: Context,
    namespace: SavedNamespace,
    key: SavedKey,
    version: Annotated[int, Field(ge=1, le=MAX_INT)],
) -> Redacted:
    """Erase a version's content; its record stays."""
    runtime, principal = acting(ctx)
    entry = await runtime.redaction.redact(principal, namespace, key, version)
    return Redacted(
        namespace=entry.namespace,
        key=entry.key,
        version=entry.version,
        redacted_at=entry.redacted_at or "",
        redacted_by=entry.redacted_by or "",
    )


async def memory_list(
    ctx: Context,
    prefix: Prefix | None = None,
    memory_type: MemoryType | None = None,
    limit: Annotated[int, Field(ge=1, le=1000)] = 50,
    cursor: Cursor = None,
    include_superseded: bool = False,
    as_of: Time = None,
    valid_at: Time = None,
) -> MemoryList:
    """List live memories under a prefix (by namespace and key; without one, all you may
    read), hiding what no longer holds unless include_superseded; as_of, valid_at: as
    memory_get. Long values are cut (see truncated)."""
    runtime, principal = acting(ctx)
    page = await runtime.memories.list(
        principal, prefix, memory_type, limit, cursor, include_superseded, as_of, valid_at
    )
    return MemoryList(
        entries=[MemoryRecord.of(e) for e in page.entries], next_cursor=page.next_cursor
    )


async def memory_search(
    ctx: Context,
    query: Annotated[str, Field(min_length=1, max_length=2000)],
    prefix: Annotated[
        str | None,
        Field(max_length=512, description="e.g. 'user:alice'"),
    ] = None,
    k: Annotated[int, Field(ge=1, le=100)] = 10,
    mode: Literal["hybrid", "keyword", "semantic"] = "hybrid",
    context: Annotated[
        int, Field(ge=0, le=MAX_CONTEXT, description="Neighbours on each side.")
    ] = 0,
    max_tokens: Annotated[
        int | None,
        Field(
            ge=MIN_MAX_TOKENS,
            le=MAX_MAX_TOKENS,
            description="Token budget.",
        ),
    ] = None,
    memory_type: MemoryType | None = None,
    after: Time = None,
    before: Time = None,
    metadata: Annotated[
        dict[str, str | int | float | bool] | None,
        Field(description="Metadata values to match."),
    ] = None,
    include_superseded: bool = False,
    valid_at: Time = None,
    as_of: Time = None,
) -> MemorySearchResult:
    """Search the memories you may read by meaning and keywords; after <= t < before (t: the
    date a value names, else when stored). Hides what no longer holds unless
    include_superseded; as_of, valid_at: as memory_get. Long values are cut; contradictions
    marked."""
    runtime, principal = acting(ctx)
    return await runtime.memories.search(
        principal,
        query,
        prefix,
        k,
        mode,
        context=context,
        max_tokens=max_tokens,
        memory_type=memory_type,
        after=after,
        before=before,
        metadata=metadata,
        include_superseded=include_superseded,
        valid_at=valid_at,
        as_of=as_of,
    )


def tools() -> list[Tool]:
    return [
        strict_tool(memory_put, title="Save a memory", annotations=writes(idempotent=True)),
        strict_tool(memory_get, title="Recall a memory", annotations=READ_ONLY),
        strict_tool(memory_history, title="Memory history", annotations=READ_ONLY),
        strict_tool(
            memory_delete,
            title="Delete a memory",
            annotations=writes(destructive=True, idempotent=True),
        ),
        strict_tool(
            memory_restore, title="Restore a deleted memory", annotations=writes(idempotent=True)
        ),
        strict_tool(
            memory_redact,
            title="Redact memory",
            annotations=writes(destructive=True, idempotent=True),
        ),
        strict_tool(memory_list, title="List memories", annotations=READ_ONLY),
        strict_tool(memory_search, title="Search memories", annotations=READ_ONLY),
    ]
