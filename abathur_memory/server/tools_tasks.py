"""Task tools."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from pydantic import BaseModel, Field

from abathur_memory.core.records import Checkpoint, Task
from abathur_memory.server.context import (
    MAX_INT,
    Cursor,
    JsonObject,
    JsonValue,
    principal_for,
    runtime_of,
)
from abathur_memory.server.registry import READ_ONLY, strict_tool, writes

Status = Literal["pending", "running", "completed", "failed", "cancelled"]
UpdateStatus = Literal["completed", "failed", "cancelled", "pending"]
TaskId = Annotated[str, Field(min_length=1, max_length=256, description="The task id.")]
AgentType = Annotated[str, Field(min_length=1, max_length=64)]


class TaskList(BaseModel):
    tasks: list[Task]
    next_cursor: str | None


class Claimed(BaseModel):
    task: Task | None = Field(description="The claimed task, or null when none is ready.")


async def task_create(
    ctx: Context,
    prompt: Annotated[str, Field(min_length=1, max_length=100_000)],
    priority: Annotated[int, Field(ge=0, le=10, description="10 is most urgent.")] = 5,
    agent_type: AgentType = "general",
    input: JsonObject | None = None,
    dependencies: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=256)]] | None,
        Field(max_length=100, description="Ids of tasks that must complete first."),
    ] = None,
    session_id: Annotated[str | None, Field(max_length=256)] = None,
    parent_task_id: Annotated[str | None, Field(max_length=256)] = None,
    max_retries: Annotated[int, Field(ge=0, le=100)] = 3,
    timeout_seconds: Annotated[
        int,
        Field(ge=1, le=604_800, description="A running task silent this long is requeued."),
    ] = 3600,
) -> Task:
    """Queue a task for an agent. It can be claimed once all its dependencies completed."""
    return await runtime_of(ctx).tasks.create(
        principal_for(ctx),
        prompt,
        priority,
        agent_type,
        input,
        dependencies,
        session_id,
        parent_task_id,
        max_retries,
        timeout_seconds,
    )


async def task_get(ctx: Context, task_id: TaskId) -> Task:
    """Read one task: its status, input, result or error, retries and dependencies."""
    return await runtime_of(ctx).tasks.get(principal_for(ctx), task_id)


async def task_update(
    ctx: Context,
    task_id: TaskId,
    status: UpdateStatus | None = None,
    result: JsonValue = None,
    error: Annotated[str | None, Field(max_length=10_000)] = None,
) -> Task:
    """Report on a task you claimed: completed (with result), failed (with error), cancelled,
    or pending (give it back, counts a retry). With no status it is a heartbeat that keeps a
    running task from timing out."""
    return await runtime_of(ctx).tasks.update(principal_for(ctx), task_id, status, result, error)


async def task_list(
    ctx: Context,
    status: Status | None = None,
    agent_type: Annotated[str | None, Field(max_length=64)] = None,
    session_id: Annotated[str | None, Field(max_length=256)] = None,
    limit: Annotated[int, Field(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> TaskList:
    """List your tasks, newest first, optionally by status, agent type or session. Long
    prompts, inputs and results are cut (see truncated): task_get reads one whole."""
    page = await runtime_of(ctx).tasks.list(
        principal_for(ctx), status, agent_type, session_id, limit, cursor
    )
    return TaskList(tasks=page.tasks, next_cursor=page.next_cursor)


async def task_claim(
    ctx: Context,
    agent_type: Annotated[str | None, Field(max_length=64)] = None,
    claimant: Annotated[
        str | None, Field(max_length=128, description="Your agent name, recorded on the task.")
    ] = None,
) -> Claimed:
    """Take the most urgent ready task (status becomes running). No two callers ever get the
    same task. Returns {task: null} when nothing is ready."""
    return Claimed(task=await runtime_of(ctx).tasks.claim(principal_for(ctx), agent_type, claimant))


Iteration = Annotated[int, Field(ge=0, le=MAX_INT, description="Which step of the work.")]


async def checkpoint_save(
    ctx: Context, task_id: TaskId, iteration: Iteration, state: JsonValue
) -> Checkpoint:
    """Save the state of a task of yours at an iteration (overwriting that iteration), so
    the work can resume from it after an interruption."""
    return await runtime_of(ctx).checkpoints.save(principal_for(ctx), task_id, iteration, state)


async def checkpoint_get(
    ctx: Context,
    task_id: TaskId,
    iteration: Annotated[
        int | None, Field(ge=0, le=MAX_INT, description="Omit for the latest checkpoint.")
    ] = None,
) -> Checkpoint:
    """Read a task's checkpoint: the latest, or the one at an iteration."""
    return await runtime_of(ctx).checkpoints.load(principal_for(ctx), task_id, iteration)


def tools() -> list[Tool]:
    return [
        strict_tool(task_create, title="Queue a task", annotations=writes()),
        strict_tool(task_get, title="Read a task", annotations=READ_ONLY),
        strict_tool(task_update, title="Update a task", annotations=writes()),
        strict_tool(task_list, title="List tasks", annotations=READ_ONLY),
        strict_tool(task_claim, title="Claim the next task", annotations=writes()),
        strict_tool(
            checkpoint_save, title="Save a task checkpoint", annotations=writes(idempotent=True)
        ),
        strict_tool(checkpoint_get, title="Read a task checkpoint", annotations=READ_ONLY),
    ]
