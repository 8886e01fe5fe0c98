"""Session tools."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from pydantic import BaseModel, Field

from abathur_memory.memory.sessions import Session, SessionEvent
from abathur_memory.server.context import MAX_INT, Cursor, JsonObject, JsonValue, services_of
from abathur_memory.server.registry import READ_ONLY, strict_tool, writes

Status = Literal["created", "active", "paused", "terminated", "archived"]
SessionId = Annotated[str, Field(min_length=1, max_length=256, description="The session id.")]


class SessionSummary(BaseModel):
    id: str
    app_name: str
    user_id: str
    project_id: str | None
    status: str
    last_seq: int = Field(description="Sequence number of the last event (0: none yet).")
    state: dict[str, Any]
    metadata: dict[str, Any]
    created_at: str
    last_update_time: str
    terminated_at: str | None
    archived_at: str | None

    @classmethod
    def of(cls, session: Session) -> SessionSummary:
        return cls(**session.as_dict(with_events=False))


class SessionDetail(SessionSummary):
    events: list[SessionEvent]

    @classmethod
    def of(cls, session: Session) -> SessionDetail:
        return cls(**session.as_dict(with_events=False), events=session.events)


class Appended(BaseModel):
    session_id: str
    seq: int = Field(description="This event's sequence number.")
    event_type: str
    status: str = Field(description="Session status after the append.")
    state: dict[str, Any] | None = Field(description="The merged state, when a delta was given.")


class SessionList(BaseModel):
    sessions: list[SessionSummary]
    next_cursor: str | None


async def session_create(
    ctx: Context,
    app_name: Annotated[str | None, Field(max_length=128)] = None,
    user_id: Annotated[str | None, Field(max_length=128)] = None,
    project_id: Annotated[str | None, Field(max_length=128)] = None,
    state: JsonObject | None = None,
    metadata: JsonObject | None = None,
) -> SessionSummary:
    """Start a session (status 'created'; the first event makes it 'active'). app_name,
    user_id and project_id default to this server's own."""
    session = await services_of(ctx).sessions.create(app_name, user_id, project_id, state, metadata)
    return SessionSummary.of(session)


async def session_get(
    ctx: Context,
    session_id: SessionId,
    events_after: Annotated[
        int,
        Field(ge=-1, le=MAX_INT, description="Return events after this seq; -1: the latest ones."),
    ] = -1,
    events_limit: Annotated[int, Field(ge=0, le=1000)] = 50,
) -> SessionDetail:
    """Read a session: status, state, metadata and a page of its events."""
    session = await services_of(ctx).sessions.get(
        session_id, events_after=events_after, events_limit=events_limit
    )
    return SessionDetail.of(session)


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
    event, session = await services_of(ctx).sessions.append(
        session_id, event_type, actor, content, state_delta, expected_seq
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
) -> SessionSummary:
    """Merge keys into a session's state (a null removes a key), or replace it."""
    session = await services_of(ctx).sessions.update_state(session_id, state, replace=replace)
    return SessionSummary.of(session)


async def session_set_status(ctx: Context, session_id: SessionId, status: Status) -> SessionSummary:
    """Move a session along its lifecycle: created → active ⇄ paused → terminated → archived."""
    return SessionSummary.of(await services_of(ctx).sessions.set_status(session_id, status))


async def session_list(
    ctx: Context,
    status: Status | None = None,
    project_id: Annotated[str | None, Field(max_length=128)] = None,
    user_id: Annotated[str | None, Field(max_length=128)] = None,
    limit: Annotated[int, Field(ge=1, le=200)] = 20,
    cursor: Cursor = None,
) -> SessionList:
    """List your sessions, newest first, optionally by status or project (paged)."""
    page = await services_of(ctx).sessions.list(
        status=status, project_id=project_id, user_id=user_id, limit=limit, cursor=cursor
    )
    return SessionList(
        sessions=[SessionSummary.of(s) for s in page.sessions], next_cursor=page.next_cursor
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
    ]
