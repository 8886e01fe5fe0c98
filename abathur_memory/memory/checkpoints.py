"""Checkpoints: a task's state saved per iteration, so interrupted work can resume.

A checkpoint belongs to its task, so it follows the task's rule: only the principal that
created the task (or an admin) may save or read its checkpoints; anyone else is told the
task does not exist, and the attempt is audited.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from abathur_memory.core import values
from abathur_memory.errors import NotFound
from abathur_memory.memory.denials import Denial, DenialRecorder
from abathur_memory.memory.namespaces import Principal
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite.database import Database

MAX_STATE_BYTES = 4 * 1024 * 1024


class Checkpoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_id: str
    iteration: int
    state: values.JsonAny
    session_id: str | None
    created_at: str

    @classmethod
    def from_row(cls, row: driver.Row) -> Checkpoint:
        return cls(
            task_id=row["task_id"],
            iteration=row["iteration"],
            state=json.loads(row["state"]),
            session_id=row["session_id"],
            created_at=timestamps.to_iso(row["created_at"]) or "",
        )


class CheckpointRepository:
    def __init__(
        self, db: Database, principal: Principal, recorder: DenialRecorder | None = None
    ) -> None:
        self.db = db
        self.principal = principal
        self.recorder = recorder or DenialRecorder(db)

    def _owned_task(self, conn: driver.Connection, task_id: str) -> driver.Row:
        row = conn.execute(
            "SELECT created_by, session_id FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        if row is not None and not self.principal.admin and row[0] != self.principal.actor:
            self.recorder.record(
                Denial(
                    self.principal.actor,
                    "task_denied",
                    "checkpoint",
                    task_id,
                    "tasks belong to the principal that created them",
                )
            )
            row = None
        if row is None:
            raise NotFound(f"no task {task_id!r}")
        return row

    async def save(
        self, task_id: str, iteration: int, state: Any, session_id: str | None = None
    ) -> Checkpoint:
        """Save (or overwrite) the checkpoint of ``task_id`` at ``iteration``."""
        task_id = values.check_identifier(task_id, what="task_id")
        values.check_integer(iteration, what="iteration", low=0)
        text = values.encode_json(state, what="checkpoint state", max_bytes=MAX_STATE_BYTES)

        def upsert(conn: driver.Connection) -> Checkpoint:
            task = self._owned_task(conn, task_id)
            row = conn.execute(
                "INSERT INTO checkpoints (task_id, iteration, state, created_at, session_id)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (task_id, iteration) DO UPDATE SET"
                " state = excluded.state, created_at = excluded.created_at,"
                " session_id = excluded.session_id RETURNING *",
                (task_id, iteration, text, timestamps.now_db(), session_id or task["session_id"]),
            ).fetchone()
            return Checkpoint.from_row(row)

        return await self.db.write(upsert)

    async def load(self, task_id: str, iteration: int | None = None) -> Checkpoint:
        """The checkpoint at ``iteration``, or the latest one."""
        task_id = values.check_identifier(task_id, what="task_id")
        if iteration is not None:
            values.check_integer(iteration, what="iteration", low=0)

        def read(conn: driver.Connection) -> Checkpoint:
            self._owned_task(conn, task_id)
            if iteration is None:
                row = conn.execute(
                    "SELECT * FROM checkpoints WHERE task_id = ? ORDER BY iteration DESC LIMIT 1",
                    (task_id,),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT * FROM checkpoints WHERE task_id = ? AND iteration = ?",
                    (task_id, iteration),
                ).fetchone()
            if row is None:
                which = "any checkpoint" if iteration is None else f"a checkpoint at {iteration}"
                raise NotFound(f"task {task_id!r} has no {which}")
            return Checkpoint.from_row(row)

        return await self.db.read(read)

    async def iterations(self, task_id: str) -> list[int]:
        task_id = values.check_identifier(task_id, what="task_id")

        def read(conn: driver.Connection) -> list[int]:
            self._owned_task(conn, task_id)
            rows = conn.execute(
                "SELECT iteration FROM checkpoints WHERE task_id = ? ORDER BY iteration",
                (task_id,),
            ).fetchall()
            return [r[0] for r in rows]

        return await self.db.read(read)
