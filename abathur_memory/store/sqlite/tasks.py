"""Tasks and their checkpoints on SQLite. A claim is one ``BEGIN IMMEDIATE`` transaction:
requeue what timed out, pick the most urgent ready task, mark it running. The write lock
makes it atomic across processes."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Sequence
from typing import Any

from abathur_memory.core.records import Checkpoint, NewTask, Task, TaskChange
from abathur_memory.core.replies import Bounds, fitting
from abathur_memory.errors import NotFound
from abathur_memory.store.sqlite import rows, timestamps
from abathur_memory.store.sqlite.database import Database
from abathur_memory.store.sqlite.driver import Connection

_REQUEUE_EXPIRED = f"""
UPDATE tasks
SET status = CASE WHEN retry_count < max_retries THEN 'pending' ELSE 'failed' END,
    retry_count = retry_count + 1,
    error_message = 'timed out: no update for ' || max_execution_timeout_seconds || ' s',
    claimed_by = NULL,
    last_updated_at = {timestamps.SQL_NOW}
WHERE status = 'running'
  AND last_updated_at < strftime('%Y-%m-%d %H:%M:%f', 'now',
                                 '-' || max_execution_timeout_seconds || ' seconds')
  AND (:owner IS NULL OR created_by = :owner)
"""

_NEXT_READY = """
SELECT t.id FROM tasks AS t
WHERE t.status = 'pending'
  AND (:agent_type IS NULL OR t.agent_type = :agent_type)
  AND (:owner IS NULL OR t.created_by = :owner)
  AND NOT EXISTS (
      SELECT 1 FROM json_each(COALESCE(t.dependencies, '[]')) AS d
      LEFT JOIN tasks AS dep ON dep.id = d.value
      WHERE dep.status IS NOT 'completed')
ORDER BY t.priority DESC, t.submitted_at ASC
LIMIT 1
"""


class SqliteTaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, task: NewTask) -> Task:
        def insert(conn: Connection) -> Task:
            now = timestamps.now_db()
            row = conn.execute(
                "INSERT INTO tasks (id, prompt, agent_type, priority, status, input_data,"
                " max_retries, max_execution_timeout_seconds, submitted_at, last_updated_at,"
                " created_by, parent_task_id, dependencies, session_id)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    task.id,
                    task.prompt,
                    task.agent_type,
                    task.priority,
                    task.input_text,
                    task.max_retries,
                    task.timeout_seconds,
                    now,
                    now,
                    task.created_by,
                    task.parent_task_id,
                    json.dumps(task.dependencies),
                    task.session_id,
                ),
            ).fetchone()
            return rows.task(row)

        return await self.db.write(insert)

    async def owners(self, task_ids: Sequence[str]) -> dict[str, str | None]:
        if not task_ids:
            return {}
        marks = ",".join("?" for _ in task_ids)
        found = await self.db.fetchall(
            f"SELECT id, created_by FROM tasks WHERE id IN ({marks})", list(task_ids)
        )
        return {r[0]: r[1] for r in found}

    async def get(self, task_id: str) -> Task | None:
        row = await self.db.fetchone("SELECT * FROM tasks WHERE id = ?", (task_id,))
        return None if row is None else rows.task(row)

    async def change(self, task_id: str, decide: Callable[[Task], TaskChange | None]) -> Task:
        def apply(conn: Connection) -> Task:
            row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise NotFound(f"no task {task_id!r}")
            change = decide(rows.task(row))
            sets = [f"last_updated_at = {timestamps.SQL_NOW}"]
            params: builtins.list[Any] = []
            if change is not None:
                sets.append("status = ?")
                params.append(change.status)
                if change.result_text is not None:
                    sets.append("result_data = ?")
                    params.append(change.result_text)
                if change.error is not None:
                    sets.append("error_message = ?")
                    params.append(change.error)
                if change.completed:
                    sets.append(f"completed_at = {timestamps.SQL_NOW}")
                if change.requeued:
                    sets += [
                        "retry_count = retry_count + 1",
                        "claimed_by = NULL",
                        "started_at = NULL",
                    ]
            updated = conn.execute(
                f"UPDATE tasks SET {', '.join(sets)} WHERE id = ? RETURNING *", [*params, task_id]
            ).fetchone()
            return rows.task(updated)

        return await self.db.write(apply)

    async def claim(self, agent_type: str | None, owner: str | None, claimant: str) -> Task | None:
        params = {"agent_type": agent_type, "owner": owner}

        def take(conn: Connection) -> Task | None:
            conn.execute(_REQUEUE_EXPIRED, {"owner": owner})
            found = conn.execute(_NEXT_READY, params).fetchone()
            if found is None:
                return None
            row = conn.execute(
                f"UPDATE tasks SET status = 'running', claimed_by = ?,"
                f" started_at = {timestamps.SQL_NOW}, last_updated_at = {timestamps.SQL_NOW}"
                " WHERE id = ? AND status = 'pending' RETURNING *",
                (claimant, found["id"]),
            ).fetchone()
            return rows.task(row)

        return await self.db.write(take)

    async def page(
        self,
        *,
        owner: str | None,
        status: str | None,
        agent_type: str | None,
        session_id: str | None,
        before: tuple[str, str],
        limit: int,
        bounds: Bounds | None = None,
    ) -> tuple[builtins.list[Task], tuple[str, str] | None]:
        # rowid breaks ties between tasks submitted in the same millisecond.
        clauses = ["(submitted_at, rowid) < (?, CAST(? AS INTEGER))"]
        params: builtins.list[Any] = [before[0] or "\uffff", before[1] or str(2**62)]
        for column, value in (
            ("created_by", owner),
            ("status", status),
            ("agent_type", agent_type),
            ("session_id", session_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        cut = None if bounds is None else bounds.field_bytes
        found = await self.db.fetchall(
            f"SELECT rowid AS row_number, {rows.listed_task_columns(cut)} FROM tasks"
            f" WHERE {' AND '.join(clauses)} ORDER BY submitted_at DESC, rowid DESC LIMIT ?",
            [*params, limit + 1],
        )
        candidates = [rows.task(r, rows.NO_CUT if cut is None else cut) for r in found[:limit]]
        kept = len(candidates) if bounds is None else fitting(candidates, bounds.reply_bytes)
        cursor = None
        if len(found) > kept:
            last = found[kept - 1]
            cursor = (last["submitted_at"], str(last["row_number"]))
        return candidates[:kept], cursor


class SqliteCheckpointStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(
        self, task_id: str, iteration: int, state_text: str, session_id: str | None
    ) -> Checkpoint:
        def upsert(conn: Connection) -> Checkpoint:
            task = conn.execute("SELECT session_id FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if task is None:
                raise NotFound(f"no task {task_id!r}")
            if (
                session_id
                and not conn.execute(
                    "SELECT 1 FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
            ):
                raise NotFound(f"no session {session_id!r}")
            row = conn.execute(
                "INSERT INTO checkpoints (task_id, iteration, state, created_at, session_id)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (task_id, iteration) DO UPDATE SET"
                " state = excluded.state, created_at = excluded.created_at,"
                " session_id = excluded.session_id RETURNING *",
                (task_id, iteration, state_text, timestamps.now_db(), session_id or task[0]),
            ).fetchone()
            return rows.checkpoint(row)

        return await self.db.write(upsert)

    async def load(self, task_id: str, iteration: int | None) -> Checkpoint | None:
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
        return None if row is None else rows.checkpoint(row)

    async def iterations(self, task_id: str) -> builtins.list[int]:
        found = await self.db.fetchall(
            "SELECT iteration FROM checkpoints WHERE task_id = ? ORDER BY iteration", (task_id,)
        )
        return [r[0] for r in found]
