"""Tasks and their checkpoints on PostgreSQL.

A claim requeues what timed out, then takes the most urgent ready task with
``FOR NO KEY UPDATE SKIP LOCKED``: two claimers, in any processes on any hosts, lock
different rows, and neither waits for the other. Both statements go out in one pipeline
(one implicit transaction, one round trip); each is a complete change on its own.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Sequence
from typing import Any

from abathur_memory.core.records import Checkpoint, NewTask, Task, TaskChange
from abathur_memory.core.replies import Bounds, fitting
from abathur_memory.errors import NotFound
from abathur_memory.store.postgres import rows
from abathur_memory.store.postgres.connection import Conn, Database, Queued
from abathur_memory.store.postgres.times import SQL_NOW, cursor_position, cursor_text

_REQUEUE_EXPIRED = f"""
UPDATE tasks
SET status = CASE WHEN retry_count < max_retries THEN 'pending' ELSE 'failed' END,
    retry_count = retry_count + 1,
    error_message = 'timed out: no update for ' || max_execution_timeout_seconds || ' s',
    claimed_by = NULL,
    last_updated_at = {SQL_NOW}
WHERE id IN (
    SELECT id FROM tasks
    WHERE status = 'running'
      AND last_updated_at < {SQL_NOW} - make_interval(secs => max_execution_timeout_seconds)
      AND (%(owner)s::text IS NULL OR created_by = %(owner)s)
    FOR NO KEY UPDATE SKIP LOCKED)
"""

_CLAIM = f"""
WITH next AS (
    SELECT t.id FROM tasks AS t
    WHERE t.status = 'pending'
      AND (%(agent_type)s::text IS NULL OR t.agent_type = %(agent_type)s)
      AND (%(owner)s::text IS NULL OR t.created_by = %(owner)s)
      AND NOT EXISTS (
          SELECT 1 FROM jsonb_array_elements_text(t.dependencies) AS d(id)
          LEFT JOIN tasks AS dep ON dep.id = d.id
          WHERE dep.status IS DISTINCT FROM 'completed')
    ORDER BY t.priority DESC, t.submitted_at, t.row_id
    LIMIT 1
    FOR NO KEY UPDATE OF t SKIP LOCKED
)
UPDATE tasks AS t
SET status = 'running', claimed_by = %(claimant)s, started_at = {SQL_NOW},
    last_updated_at = {SQL_NOW}
FROM next WHERE t.id = next.id
RETURNING {rows.columns(rows.TASK, "t")}
"""

_SAVE_CHECKPOINT = f"""
WITH task AS (SELECT session_id FROM tasks WHERE id = %(task_id)s)
INSERT INTO checkpoints (task_id, iteration, state, created_at, session_id)
SELECT %(task_id)s, %(iteration)s, %(state)s::jsonb, {SQL_NOW},
       COALESCE(%(session_id)s, task.session_id)
FROM task
ON CONFLICT (task_id, iteration) DO UPDATE
SET state = excluded.state, created_at = excluded.created_at, session_id = excluded.session_id
RETURNING {rows.CHECKPOINT}
"""


class PostgresTaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, task: NewTask) -> Task:
        row = await self.db.fetchone(
            "INSERT INTO tasks (id, prompt, agent_type, priority, status, input_data,"
            " max_retries, max_execution_timeout_seconds, created_by, parent_task_id,"
            " dependencies, session_id)"
            " VALUES (%s, %s, %s, %s, 'pending', %s::jsonb, %s, %s, %s, %s, %s::jsonb, %s)"
            f" RETURNING {rows.TASK}",
            (
                task.id,
                task.prompt,
                task.agent_type,
                task.priority,
                task.input_text,
                task.max_retries,
                task.timeout_seconds,
                task.created_by,
                task.parent_task_id,
                json.dumps(task.dependencies),
                task.session_id,
            ),
            what="creating a task",
        )
        assert row is not None
        return rows.task(row)

    async def owners(self, task_ids: Sequence[str]) -> dict[str, str | None]:
        if not task_ids:
            return {}
        found = await self.db.fetchall(
            "SELECT id, created_by FROM tasks WHERE id = ANY(%s::text[])", (list(task_ids),)
        )
        return {r[0]: r[1] for r in found}

    async def get(self, task_id: str) -> Task | None:
        row = await self.db.fetchone(f"SELECT {rows.TASK} FROM tasks WHERE id = %s", (task_id,))
        return None if row is None else rows.task(row)

    async def change(self, task_id: str, decide: Callable[[Task], TaskChange | None]) -> Task:
        async def queue(conn: Conn) -> Queued:
            cur = await conn.execute(
                f"SELECT {rows.TASK} FROM tasks WHERE id = %s FOR NO KEY UPDATE", (task_id,)
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no task {task_id!r}")
            change = decide(rows.task(row))
            sets = [f"last_updated_at = {SQL_NOW}"]
            params: builtins.list[Any] = []
            if change is not None:
                sets.append("status = %s")
                params.append(change.status)
                if change.result_text is not None:
                    sets.append("result_data = %s::jsonb")
                    params.append(change.result_text)
                if change.error is not None:
                    sets.append("error_message = %s")
                    params.append(change.error)
                if change.completed:
                    sets.append(f"completed_at = {SQL_NOW}")
                if change.requeued:
                    sets += [
                        "retry_count = retry_count + 1",
                        "claimed_by = NULL",
                        "started_at = NULL",
                    ]
            return await conn.execute(
                f"UPDATE tasks SET {', '.join(sets)} WHERE id = %s RETURNING {rows.TASK}",
                [*params, task_id],
            )

        found = await self.db.pipelined(queue, what="updating a task")
        return rows.task(found[0])

    async def claim(self, agent_type: str | None, owner: str | None, claimant: str) -> Task | None:
        params = {"agent_type": agent_type, "owner": owner, "claimant": claimant}

        async def queue(conn: Conn) -> Queued:
            await conn.execute(_REQUEUE_EXPIRED, {"owner": owner})
            return await conn.execute(_CLAIM, params)

        found = await self.db.pipelined(queue, what="claiming a task")
        return rows.task(found[0]) if found else None

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
        # row_id breaks ties between tasks submitted in the same millisecond.
        clauses = ["(submitted_at, row_id) < (%s::timestamptz, %s::bigint)"]
        params: builtins.list[Any] = list(cursor_position(before))
        for column, value in (
            ("created_by", owner),
            ("status", status),
            ("agent_type", agent_type),
            ("session_id", session_id),
        ):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        cut = None if bounds is None else bounds.field_bytes
        found = await self.db.fetchall(
            f"SELECT row_id, {rows.listed(rows.TASK, rows.TASK_CUT, cut)} FROM tasks"
            f" WHERE {' AND '.join(clauses)} ORDER BY submitted_at DESC, row_id DESC LIMIT %s",
            [*params, limit + 1],
        )
        limited = rows.NO_CUT if cut is None else cut
        candidates = [rows.task(r[1:], limited) for r in found[:limit]]
        kept = len(candidates) if bounds is None else fitting(candidates, bounds.reply_bytes)
        cursor = None
        if len(found) > kept:
            last = found[kept - 1]
            cursor = (cursor_text(last[17]), str(last[0]))
        return candidates[:kept], cursor


class PostgresCheckpointStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(
        self, task_id: str, iteration: int, state_text: str, session_id: str | None
    ) -> Checkpoint:
        params = {
            "task_id": task_id,
            "iteration": iteration,
            "state": state_text,
            "session_id": session_id or None,
        }
        row = await self.db.fetchone(_SAVE_CHECKPOINT, params, what="saving a checkpoint")
        if row is None:
            raise NotFound(f"no task {task_id!r}")
        return rows.checkpoint(row)

    async def load(self, task_id: str, iteration: int | None) -> Checkpoint | None:
        if iteration is None:
            row = await self.db.fetchone(
                f"SELECT {rows.CHECKPOINT} FROM checkpoints WHERE task_id = %s"
                " ORDER BY iteration DESC LIMIT 1",
                (task_id,),
            )
        else:
            row = await self.db.fetchone(
                f"SELECT {rows.CHECKPOINT} FROM checkpoints WHERE task_id = %s AND iteration = %s",
                (task_id, iteration),
            )
        return None if row is None else rows.checkpoint(row)

    async def iterations(self, task_id: str) -> builtins.list[int]:
        found = await self.db.fetchall(
            "SELECT iteration FROM checkpoints WHERE task_id = %s ORDER BY iteration", (task_id,)
        )
        return [r[0] for r in found]
