"""Tasks: a priority queue with dependencies, atomic claims, timeouts and retries.

- ``pending``: waiting; it is *ready* when every dependency is ``completed``.
- ``claim`` hands the highest-priority ready task (oldest first among equals) to one caller
  inside one write transaction, so two claimers never get the same task, across processes.
- A ``running`` task not updated within its timeout is put back to ``pending`` (or ``failed``
  once its retries are used up) by the next claim; every such return counts a retry.
- Tasks belong to the principal that created them (an admin principal sees all).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from abathur_memory.core import cursors, values
from abathur_memory.errors import Conflict, InvalidInput, NotFound
from abathur_memory.memory.access import owns_session
from abathur_memory.memory.denials import Denial, DenialRecorder
from abathur_memory.memory.namespaces import Principal
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite.database import Database

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


class Task(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    prompt: str
    agent_type: str
    priority: int
    status: str
    input: dict[str, Any]
    result: values.JsonAny
    error: str | None
    retry_count: int
    max_retries: int
    timeout_seconds: int
    dependencies: list[str]
    parent_task_id: str | None
    session_id: str | None
    created_by: str | None
    claimed_by: str | None
    submitted_at: str
    started_at: str | None
    completed_at: str | None
    last_updated_at: str

    @classmethod
    def from_row(cls, row: driver.Row) -> Task:
        return cls(
            id=row["id"],
            prompt=row["prompt"],
            agent_type=row["agent_type"],
            priority=row["priority"],
            status=row["status"],
            input=json.loads(row["input_data"]),
            result=values.decode(row["result_data"]),
            error=row["error_message"],
            retry_count=row["retry_count"] or 0,
            max_retries=row["max_retries"] if row["max_retries"] is not None else 0,
            timeout_seconds=row["max_execution_timeout_seconds"] or 0,
            dependencies=json.loads(row["dependencies"] or "[]"),
            parent_task_id=row["parent_task_id"],
            session_id=row["session_id"],
            created_by=row["created_by"],
            claimed_by=row["claimed_by"],
            submitted_at=timestamps.to_iso(row["submitted_at"]) or "",
            started_at=timestamps.to_iso(row["started_at"]),
            completed_at=timestamps.to_iso(row["completed_at"]),
            last_updated_at=timestamps.to_iso(row["last_updated_at"]) or "",
        )

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


@dataclass
class TaskPage:
    tasks: list[Task]
    next_cursor: str | None


class TaskService:
    def __init__(
        self, db: Database, principal: Principal, recorder: DenialRecorder | None = None
    ) -> None:
        self.db = db
        self.principal = principal
        self.recorder = recorder or DenialRecorder(db)

    def _deny(self, attempted: str, target: str, rule: str) -> None:
        self.recorder.record(Denial(self.principal.actor, "task_denied", attempted, target, rule))

    @property
    def _owner(self) -> str | None:
        return None if self.principal.admin else self.principal.actor

    async def create(
        self,
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
        _check_int(priority, "priority", 0, 10)
        _check_int(max_retries, "max_retries", 0, 100)
        _check_int(timeout_seconds, "timeout_seconds", 1, 7 * 24 * 3600)
        agent_type = values.check_identifier(agent_type, what="agent_type", max_length=64)
        input_text = values.encode_object(input, what="input", max_bytes=MAX_PAYLOAD_BYTES)
        deps = list(dependencies or [])
        if len(deps) > MAX_DEPENDENCIES:
            raise InvalidInput(f"at most {MAX_DEPENDENCIES} dependencies")
        deps = [values.check_identifier(dep, what="dependency id") for dep in deps]
        if len(set(deps)) != len(deps):
            raise InvalidInput("dependencies contain the same task twice")
        task_id = str(uuid.uuid4())
        actor = self.principal.actor

        def insert(conn: driver.Connection) -> Task:
            for dep in deps:
                self._owned(conn, dep, what="dependency")
            if parent_task_id is not None:
                self._owned(conn, parent_task_id, what="parent task")
            if session_id is not None and not owns_session(conn, session_id, self.principal):
                if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
                    self._deny("link", session_id, "sessions belong to their owner")
                raise NotFound(f"no session {session_id!r}")
            now = timestamps.now_db()
            row = conn.execute(
                "INSERT INTO tasks (id, prompt, agent_type, priority, status, input_data,"
                " max_retries, max_execution_timeout_seconds, submitted_at, last_updated_at,"
                " created_by, parent_task_id, dependencies, session_id)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    task_id,
                    prompt,
                    agent_type,
                    priority,
                    input_text,
                    max_retries,
                    timeout_seconds,
                    now,
                    now,
                    actor,
                    parent_task_id,
                    json.dumps(deps),
                    session_id,
                ),
            ).fetchone()
            return Task.from_row(row)

        return await self.db.write(insert)

    async def get(self, task_id: str) -> Task:
        task_id = values.check_identifier(task_id, what="task_id")
        return await self.db.read(lambda conn: Task.from_row(self._owned(conn, task_id)))

    async def update(
        self,
        task_id: str,
        status: str | None = None,
        result: Any = None,
        error: str | None = None,
    ) -> Task:
        """Change status (along TRANSITIONS), record a result or error, or just heartbeat."""
        task_id = values.check_identifier(task_id, what="task_id")
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        result_text = (
            None
            if result is None
            else values.encode_json(result, what="result", max_bytes=MAX_PAYLOAD_BYTES)
        )
        if error is not None and (not isinstance(error, str) or len(error) > 10_000):
            raise InvalidInput("error must be a string of at most 10,000 characters")

        def apply(conn: driver.Connection) -> Task:
            row = self._owned(conn, task_id)
            current = row["status"]
            target = status or current
            if target != current and target not in TRANSITIONS[current]:
                allowed = ", ".join(TRANSITIONS[current]) or "nothing (it is final)"
                raise Conflict(
                    f"task {task_id} cannot go from {current} to {target} "
                    f"(from {current}: {allowed})"
                )
            if target == current and current in FINAL:
                raise Conflict(f"task {task_id} is {current}: it can no longer change")
            retrying = target == "pending" and current in ("running", "failed")
            if retrying and row["retry_count"] >= row["max_retries"]:
                raise Conflict(
                    f"task {task_id} has used all {row['max_retries']} retries; "
                    "create a new task instead"
                )
            sets = [f"last_updated_at = {timestamps.SQL_NOW}", "status = ?"]
            params: list[Any] = [target]
            if result_text is not None:
                sets.append("result_data = ?")
                params.append(result_text)
            if error is not None:
                sets.append("error_message = ?")
                params.append(error)
            if target in ("completed", "failed", "cancelled") and target != current:
                sets.append(f"completed_at = {timestamps.SQL_NOW}")
            if target == "pending" and current != "pending":
                sets += ["retry_count = retry_count + 1", "claimed_by = NULL", "started_at = NULL"]
            updated = conn.execute(
                f"UPDATE tasks SET {', '.join(sets)} WHERE id = ? RETURNING *", [*params, task_id]
            ).fetchone()
            return Task.from_row(updated)

        return await self.db.write(apply)

    async def claim(
        self, agent_type: str | None = None, claimant: str | None = None
    ) -> Task | None:
        """Atomically take the next ready task (None when there is none)."""
        if agent_type is not None:
            agent_type = values.check_identifier(agent_type, what="agent_type", max_length=64)
        who = self.principal.actor if claimant is None else f"{self.principal.actor}/{claimant}"
        who = values.check_identifier(who, what="claimant")
        params = {"agent_type": agent_type, "owner": self._owner}

        def take(conn: driver.Connection) -> Task | None:
            conn.execute(_REQUEUE_EXPIRED, {"owner": self._owner})
            found = conn.execute(_NEXT_READY, params).fetchone()
            if found is None:
                return None
            row = conn.execute(
                f"UPDATE tasks SET status = 'running', claimed_by = ?,"
                f" started_at = {timestamps.SQL_NOW}, last_updated_at = {timestamps.SQL_NOW}"
                " WHERE id = ? AND status = 'pending' RETURNING *",
                (who, found["id"]),
            ).fetchone()
            return Task.from_row(row)

        return await self.db.write(take)

    async def list(
        self,
        status: str | None = None,
        agent_type: str | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        """Tasks newest first, filtered."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        # rowid breaks ties between tasks submitted in the same millisecond.
        before_submitted, before_rowid = cursors.decode(cursor, start=("\uffff", str(2**62)))
        clauses = ["(submitted_at, rowid) < (?, CAST(? AS INTEGER))"]
        params: list[Any] = [before_submitted, before_rowid]
        for column, value in (
            ("created_by", self._owner),
            ("status", status),
            ("agent_type", agent_type),
            ("session_id", session_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        rows = await self.db.fetchall(
            f"SELECT rowid AS row_number, * FROM tasks WHERE {' AND '.join(clauses)}"
            " ORDER BY submitted_at DESC, rowid DESC LIMIT ?",
            [*params, limit + 1],
        )
        tasks = [Task.from_row(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = cursors.encode(last["submitted_at"], str(last["row_number"]))
        return TaskPage(tasks, next_cursor)

    def _owned(self, conn: driver.Connection, task_id: str, *, what: str = "task") -> driver.Row:
        row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is not None and self._owner is not None and row["created_by"] != self._owner:
            # Reported as missing (not disclosed), and audited like any denial.
            self._deny("use", task_id, "tasks belong to the principal that created them")
            row = None
        if row is None:
            raise NotFound(f"no {what} {task_id!r}")
        return row


def _check_int(value: Any, name: str, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer from {low} to {high}")
