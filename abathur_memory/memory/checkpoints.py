"""Checkpoints: a task's state saved per iteration, so interrupted work can resume."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from abathur_memory.errors import InvalidInput, NotFound
from abathur_memory.memory import values
from abathur_memory.storage import driver, timestamps
from abathur_memory.storage.database import Database

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
    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(
        self, task_id: str, iteration: int, state: Any, session_id: str | None = None
    ) -> Checkpoint:
        """Save (or overwrite) the checkpoint of ``task_id`` at ``iteration``."""
        values.check_identifier(task_id, what="task_id")
        if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
            raise InvalidInput("iteration must be an integer >= 0")
        text = values.encode_json(state, what="checkpoint state", max_bytes=MAX_STATE_BYTES)

        def upsert(conn: driver.Connection) -> Checkpoint:
            task = conn.execute("SELECT session_id FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if task is None:
                raise NotFound(f"no task {task_id!r}")
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
        if iteration is None:
            row = await self.db.fetchone(
                "SELECT * FROM checkpoints WHERE task_id = ? ORDER BY iteration DESC LIMIT 1",
                (task_id,),
            )
        else:
            row = await self.db.fetchone(
                "SELECT * FROM checkpoints WHERE task_id = ? AND iteration = ?",
                (task_id, iteration),
            )
        if row is None:
            which = "any checkpoint" if iteration is None else f"a checkpoint at {iteration}"
            raise NotFound(f"task {task_id!r} has no {which}")
        return Checkpoint.from_row(row)

    async def iterations(self, task_id: str) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT iteration FROM checkpoints WHERE task_id = ? ORDER BY iteration", (task_id,)
        )
        return [r[0] for r in rows]
