"""Tasks: a priority queue with dependencies, atomic claims, timeouts and retries.

- ``pending``: waiting; it is *ready* when every dependency is ``completed``.
- ``claim`` hands the highest-priority ready task (oldest first among equals) to one caller
  atomically, so two claimers never get the same task, across processes and hosts.
- A ``running`` task not updated within its timeout is put back to ``pending`` (or ``failed``
  once its retries are used up) by the next claim; every such return counts a retry.
- Tasks belong to the principal that created them (an admin sees all); anyone else is told
  a task does not exist, and the attempt is audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from abathur_memory.core import cursors, values
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import Denial, NewTask, Task, TaskChange, TaskPage
from abathur_memory.core.replies import DEFAULT_BOUNDS, Bounds
from abathur_memory.errors import Conflict, InvalidInput, NotFound
from abathur_memory.memory.denials import DenialRecorder
from abathur_memory.store.protocols import SessionStore, TaskStore

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
FINAL = ("completed", "cancelled")
TRANSITIONS = {
    "pending": ("cancelled",),
    "running": ("completed", "failed", "cancelled", "pending"),
    "failed": ("pending", "cancelled"),
    "completed": (),
    "cancelled": (),
}
MAX_PROMPT_CHARS = 100_000
MAX_DEPENDENCIES = 100
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_LIST_LIMIT = 200
NOT_YOURS = "tasks belong to the principal that created them"


def owner_filter(principal: Principal) -> str | None:
    """The created_by a principal's tasks carry (None: an admin sees every task)."""
    return None if principal.admin else principal.actor


class TaskService:
    def __init__(
        self,
        store: TaskStore,
        sessions: SessionStore,
        recorder: DenialRecorder,
        *,
        bounds: Bounds = DEFAULT_BOUNDS,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.recorder = recorder
        self.bounds = bounds

    def _deny(self, principal: Principal, attempted: str, target: str, rule: str) -> None:
        self.recorder.record(Denial(principal.actor, "task_denied", attempted, target, rule))

    async def owned(
        self, principal: Principal, task_ids: Sequence[str], attempted: str, what: str = "task"
    ) -> None:
        """NotFound for the first task that does not exist or is not ``principal``'s."""
        owners = await self.store.owners(task_ids)
        mine = owner_filter(principal)
        for task_id in task_ids:
            if task_id in owners and mine is not None and owners[task_id] != mine:
                self._deny(principal, attempted, task_id, NOT_YOURS)
                raise NotFound(f"no {what} {task_id!r}")
            if task_id not in owners:
                raise NotFound(f"no {what} {task_id!r}")

    async def create(
        self,
        principal: Principal,
        prompt: str,
        priority: int = 5,
        agent_type: str = "general",
        input: dict[str, Any] | None = None,
        dependencies: list[str] | None = None,
        session_id: str | None = None,
        parent_task_id: str | None = None,
        max_retries: int = 3,
        timeout_seconds: int = 3600,
    ) -> Task:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInput("prompt must be a non-empty string")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidInput(f"prompt is longer than {MAX_PROMPT_CHARS:,} characters")
        values.check_integer(priority, what="priority", low=0, high=10)
        values.check_integer(max_retries, what="max_retries", low=0, high=100)
        values.check_integer(timeout_seconds, what="timeout_seconds", low=1, high=7 * 24 * 3600)
        agent_type = values.check_identifier(agent_type, what="agent_type", max_length=64)
        input_text = values.encode_object(input, what="input", max_bytes=MAX_PAYLOAD_BYTES)
        deps = list(dependencies or [])
        if len(deps) > MAX_DEPENDENCIES:
            raise InvalidInput(f"at most {MAX_DEPENDENCIES} dependencies")
        deps = [values.check_id(dep, what="a dependency", made_by="task_create") for dep in deps]
        if len(set(deps)) != len(deps):
            raise InvalidInput("dependencies contain the same task twice")
        # Owners never change, so checking them before the insert leaves no race.
        await self.owned(principal, deps, "depend on", "dependency")
        if parent_task_id is not None:
            parent_task_id = values.check_id(
                parent_task_id, what="parent_task_id", made_by="task_create"
            )
            await self.owned(principal, [parent_task_id], "use as parent", "parent task")
        if session_id is not None:
            session_id = values.check_id(session_id, what="session_id", made_by="session_create")
            owner = await self.sessions.owner(session_id)
            if owner is not None and not principal.may_use_session(*owner):
                self._deny(principal, "link", session_id, "sessions belong to their owner")
                owner = None
            if owner is None:
                raise NotFound(f"no session {session_id!r}")
        return await self.store.create(
            NewTask(
                id=str(uuid.uuid4()),
                prompt=prompt,
                agent_type=agent_type,
                priority=priority,
                input_text=input_text,
                max_retries=max_retries,
                timeout_seconds=timeout_seconds,
                created_by=principal.actor,
                parent_task_id=parent_task_id,
                dependencies=deps,
                session_id=session_id,
            )
        )

    async def get(self, principal: Principal, task_id: str) -> Task:
        task_id = values.check_id(task_id, what="task_id", made_by="task_create")
        await self.owned(principal, [task_id], "read")
        task = await self.store.get(task_id)
        if task is None:  # pragma: no cover - tasks are never deleted
            raise NotFound(f"no task {task_id!r}")
        return task

    async def update(
        self,
        principal: Principal,
        task_id: str,
        status: str | None = None,
        result: Any = None,
        error: str | None = None,
    ) -> Task:
        """Change status (along TRANSITIONS), record a result or error, or just heartbeat."""
        task_id = values.check_id(task_id, what="task_id", made_by="task_create")
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        result_text = (
            None
            if result is None
            else values.encode_json(result, what="result", max_bytes=MAX_PAYLOAD_BYTES)
        )
        if error is not None and (not isinstance(error, str) or len(error) > 10_000):
            raise InvalidInput("error must be a string of at most 10,000 characters")
        await self.owned(principal, [task_id], "update")

        def decide(current: Task) -> TaskChange | None:
            target = status or current.status
            if target != current.status and target not in TRANSITIONS[current.status]:
                allowed = ", ".join(TRANSITIONS[current.status]) or "nothing (it is final)"
                raise Conflict(
                    f"task {task_id} cannot go from {current.status} to {target} "
                    f"(from {current.status}: {allowed})"
                )
            if target == current.status and current.status in FINAL:
                raise Conflict(f"task {task_id} is {current.status}: it can no longer change")
            retrying = target == "pending" and current.status in ("running", "failed")
            if retrying and current.retry_count >= current.max_retries:
                raise Conflict(
                    f"task {task_id} has used all {current.max_retries} retries; "
                    "create a new task instead"
                )
            return TaskChange(
                status=target,
                result_text=result_text,
                error=error,
                completed=target in ("completed", "failed", "cancelled")
                and target != current.status,
                requeued=target == "pending" and current.status != "pending",
            )

        return await self.store.change(task_id, decide)

    async def claim(
        self, principal: Principal, agent_type: str | None = None, claimant: str | None = None
    ) -> Task | None:
        """Atomically take the next ready task (None when there is none)."""
        if agent_type is not None:
            agent_type = values.check_identifier(agent_type, what="agent_type", max_length=64)
        who = principal.actor if claimant is None else f"{principal.actor}/{claimant}"
        who = values.check_identifier(who, what="claimant")
        return await self.store.claim(agent_type, owner_filter(principal), who)

    async def list(
        self,
        principal: Principal,
        status: str | None = None,
        agent_type: str | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        """Tasks newest first, filtered; long prompts, inputs and results cut, and the page
        ended before it passes the reply bound (core/replies.py)."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        if session_id is not None:
            session_id = values.check_id(session_id, what="session_id", made_by="session_create")
        before = cursors.decode(cursor, start=("", ""))
        page, position = await self.store.page(
            owner=owner_filter(principal),
            status=status,
            agent_type=agent_type,
            session_id=session_id,
            before=(before[0], before[1]),
            limit=limit,
            bounds=self.bounds,
        )
        return TaskPage(page, None if position is None else cursors.encode(*position))
