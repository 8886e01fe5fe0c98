"""Everything a front end (MCP server, CLI, tests) needs, opened once over one database."""

from __future__ import annotations

from dataclasses import dataclass

from abathur_memory.config import Settings
from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.checkpoints import CheckpointRepository
from abathur_memory.memory.denials import DenialRecorder
from abathur_memory.memory.lifecycle import LifecycleService
from abathur_memory.memory.memories import MemoryService
from abathur_memory.memory.namespaces import NamespacePolicy, Principal
from abathur_memory.memory.sessions import SessionService
from abathur_memory.memory.tasks import TaskService
from abathur_memory.store.sqlite.database import Database


@dataclass
class Services:
    db: Database
    principal: Principal
    recorder: DenialRecorder
    memories: MemoryService
    sessions: SessionService
    tasks: TaskService
    checkpoints: CheckpointRepository
    lifecycle: LifecycleService

    @classmethod
    def over(
        cls,
        db: Database,
        principal: Principal,
        *,
        max_value_bytes: int,
        recorder: DenialRecorder | None = None,
    ) -> Services:
        recorder = recorder or DenialRecorder(db)
        guard = AccessGuard(db, NamespacePolicy(principal), recorder)
        return cls(
            db=db,
            principal=principal,
            recorder=recorder,
            memories=MemoryService(db, guard, max_value_bytes=max_value_bytes),
            sessions=SessionService(db, principal, recorder),
            tasks=TaskService(db, principal, recorder),
            checkpoints=CheckpointRepository(db, principal, recorder),
            lifecycle=LifecycleService(db),
        )

    @classmethod
    async def open(cls, settings: Settings, *, create: bool = True) -> Services:
        db = await Database.open(
            settings.db,
            readers=settings.readers,
            busy_timeout_ms=settings.busy_timeout_ms,
            write_retries=settings.write_retries,
            create=create,
        )
        principal = Principal(
            user=settings.user, app=settings.app, project=settings.project, admin=settings.admin
        )
        return cls.over(db, principal, max_value_bytes=settings.max_value_bytes)

    async def close(self) -> None:
        await self.recorder.close()
        await self.db.close()
