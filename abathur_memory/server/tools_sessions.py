"""Session tools."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from pydantic import BaseModel, Field

from abathur_memory.core.records import Session, SessionWithEvents
from abathur_memory.core.replies import absent
from abathur_memory.server.context import (
    MAX_INT,
    Cursor,
    JsonObject,
    JsonValue,
    principal_for,
    runtime_of,
)
from abathur_memory.server.registry import READ_ONLY, strict_tool, writes

Status = Literal["created", "active", "paused", "terminated", "archived"]
SessionId = Annotated[str, Field(min_length=1, max_length=256)]


class Appended(BaseModel):
    session_id: str
    seq: int = Field(description="This event's sequence number.")
    event_type: str
    status: str = Field(description="Session status after the append.")
    state: dict[str, Any] | None = Field(description="The merged state, when a delta was given.")


class Promoted(BaseModel):
    namespace: str
    keys: list[str]
    created: int
    unchanged: int
    summary: str | None = Field(default=None, exclude_if=absent)  # its memory's key
    note: str | None = Field(default=None, exclude_if=absent)  # why no summary was written


class SessionList(BaseModel):
    sessions: list[Session]
    next_cursor: str | None


async def session_create(
    ctx: Context,
    app_name: Annotated[str | None, Field(max_length=128)] = None,
    user_id: Annotated[str | None, Field(max_length=128)] = None,
    project_id: Annotated[str | None, Field(max_length=128)] = None,
    state: JsonObject | None = None,
    metadata: JsonObject | None = None,
) -> Session:
    """Start a session (status 'created'; the first event makes it 'active'). app_name,
    user_id and project_id default to this server's own."""
    session = await runtime_of(ctx).sessions.create(
        principal_for(ctx), app_name, user_id, project_id, state, metadata
    )
    return session


async def session_get(
    ctx: Context,
    session_id: SessionId,
    events_after: Annotated[
        int,
        Field(ge=-1, le=MAX_INT, description="Return events after this seq; -1: the latest ones."),
    ] = -1,
    events_limit: Annotated[int, Field(ge=0, le=1000)] = 50,
) -> SessionWithEvents:
    """Read a session: status, state, metadata and a page of its events (long ones cut, see
    truncated; events_limit=1 reads one whole)."""
    session = await runtime_of(ctx).sessions.get(
        principal_for(ctx), session_id, events_after=events_after, events_limit=events_limit
    )
    return session


async def session_append(
    ctx: Context,
    session_id: SessionId,
    event_type: Annotated[str, Field(min_length=1, max_length=64, description="e.g. message")],
    actor: Annotated[str, Field(min_length=1, max_length=128, description="e.g. user, agent")],
    content: JsonValue,
    state_delta: Annotated[
        JsonObject | None,
        Field(description="Merged into the session state atomically; a null removes a key."),
    ] = None,
    expected_seq: Annotated[
        int | None,
        Field(
            ge=0, le=MAX_INT, description="Reject the append unless the last seq is still this one."
        ),
    ] = None,
) -> Appended:
    """Append an event to a session's log (optionally updating its state in the same step)."""
    event, session = await runtime_of(ctx).sessions.append(
        principal_for(ctx), session_id, event_type, actor, content, state_delta, expected_seq
    )
    return Appended(
        session_id=session.id,
        seq=event.seq,
        event_type=event.event_type,
        status=session.status,
        state=session.state if state_delta is not None else None,
    )


async def session_update_state(
    ctx: Context,
    session_id: SessionId,
    state: JsonObject,
    replace: Annotated[
        bool, Field(description="Replace the whole state instead of merging into it.")
    ] = False,
) -> Session:
    """Merge keys into a session's state (a null removes a key), or replace it."""
    session = await runtime_of(ctx).sessions.update_state(
        principal_for(ctx), session_id, state, replace=replace
    )
    return session


async def session_set_status(ctx: Context, session_id: SessionId, status: Status) -> Session:
    """Move a session along its lifecycle: created → active ⇄ paused → terminated → archived."""
    return await runtime_of(ctx).sessions.set_status(principal_for(ctx), session_id, status)


async def session_list(
    ctx: Context,
    status: Status | None = None,
    project_id: Annotated[str | None, Field(max_length=128)] = None,
    user_id: Annotated[str | None, Field(max_length=128)] = None,
    limit: Annotated[int, Field(ge=1, le=200)] = 20,
    cursor: Cursor = None,
) -> SessionList:
    """List your sessions, newest first, optionally by status or project (paged). A long
    state is left out (see truncated): session_get reads it."""
    page = await runtime_of(ctx).sessions.list(
        principal_for(ctx),
        status=status,
        project_id=project_id,
        user_id=user_id,
        limit=limit,
        cursor=cursor,
    )
    return SessionList(sessions=page.sessions, next_cursor=page.next_cursor)


async def session_promote(
    ctx: Context,
    session_id: SessionId,
    namespace: Annotated[str, Field(min_length=3, max_length=512)],
    seq_start: Annotated[int, Field(ge=1, le=MAX_INT)],
    seq_end: Annotated[int, Field(ge=1, le=MAX_INT)],
    summary: bool | None = None,
) -> Promoted:
    """Save events seq_start..seq_end as episodic memories in namespace (once); summary:
    add a chat model's summary."""
    done = await runtime_of(ctx).promotion.promote(
        principal_for(ctx), session_id, namespace, seq_start, seq_end, bool(summary)
    )
    return Promoted(
        namespace=done.namespace,
        keys=done.keys,
        created=done.created,
        unchanged=done.unchanged,
        summary=done.summary,
        note=done.note,
    )


def tools() -> list[Tool]:
    return [
        strict_tool(session_create, title="Start a session", annotations=writes()),
        strict_tool(session_get, title="Read a session", annotations=READ_ONLY),
        strict_tool(session_append, title="Append a session event", annotations=writes()),
        strict_tool(session_update_state, title="Update session state", annotations=writes()),
        strict_tool(
            session_set_status, title="Change session status", annotations=writes(idempotent=True)
        ),
        strict_tool(session_list, title="List sessions", annotations=READ_ONLY),
        strict_tool(session_promote, title="Promote events", annotations=writes(idempotent=True)),
    ]
