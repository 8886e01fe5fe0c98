"""Checkpoints: a task's state saved per iteration, so interrupted work can resume.

A checkpoint belongs to its task, so it follows the task's rule: only the principal that
created the task (or an admin) may save or read its checkpoints; anyone else is told the
task does not exist, and the attempt is audited.
"""

from __future__ import annotations

from typing import Any

from abathur_memory.core import values
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import Checkpoint
from abathur_memory.errors import NotFound
from abathur_memory.memory.tasks import TaskService
from abathur_memory.store.protocols import CheckpointStore

MAX_STATE_BYTES = 4 * 1024 * 1024


class CheckpointService:
    def __init__(self, store: CheckpointStore, tasks: TaskService) -> None:
        self.store = store
        self.tasks = tasks

    async def save(
        self,
        principal: Principal,
        task_id: str,
        iteration: int,
        state: Any,
        session_id: str | None = None,
    ) -> Checkpoint:
        """Save (or overwrite) the checkpoint of ``task_id`` at ``iteration``."""
        task_id = values.check_id(task_id, what="task_id", made_by="task_create")
        values.check_integer(iteration, what="iteration", low=0)
        text = values.encode_json(state, what="checkpoint state", max_bytes=MAX_STATE_BYTES)
        if session_id is not None:
            session_id = values.check_id(session_id, what="session_id", made_by="session_create")
        await self.tasks.owned(principal, [task_id], "checkpoint")
        return await self.store.save(task_id, iteration, text, session_id)

    async def load(
        self, principal: Principal, task_id: str, iteration: int | None = None
    ) -> Checkpoint:
        """The checkpoint at ``iteration``, or the latest one."""
        task_id = values.check_id(task_id, what="task_id", made_by="task_create")
        if iteration is not None:
            values.check_integer(iteration, what="iteration", low=0)
        await self.tasks.owned(principal, [task_id], "checkpoint")
        found = await self.store.load(task_id, iteration)
        if found is None:
            at = "" if iteration is None else f" at iteration {iteration}"
            raise NotFound(f"task {task_id!r} has no checkpoint{at}")
        return found

    async def iterations(self, principal: Principal, task_id: str) -> list[int]:
        task_id = values.check_id(task_id, what="task_id", made_by="task_create")
        await self.tasks.owned(principal, [task_id], "checkpoint")
        return await self.store.iterations(task_id)
