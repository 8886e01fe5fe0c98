"""Agents: registration, heartbeats, state and the session they work in."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from abathur_memory.errors import InvalidInput, NotFound
from abathur_memory.memory import values
from abathur_memory.memory.access import owns_session
from abathur_memory.memory.namespaces import Principal
from abathur_memory.storage import driver, timestamps
from abathur_memory.storage.database import Database

STATES = ("spawning", "idle", "busy", "terminating", "terminated")


class Agent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    specialization: str
    model: str
    state: str
    task_id: str | None
    session_id: str | None
    resource_usage: dict[str, Any] | None
    spawned_at: str
    terminated_at: str | None
    last_heartbeat_at: str | None

    @classmethod
    def from_row(cls, row: driver.Row) -> Agent:
        return cls(
            id=row["id"],
            name=row["name"],
            specialization=row["specialization"],
            model=row["model"],
            state=row["state"],
            task_id=row["task_id"],
            session_id=row["session_id"],
            resource_usage=values.decode(row["resource_usage"]),
            spawned_at=timestamps.to_iso(row["spawned_at"]) or "",
            terminated_at=timestamps.to_iso(row["terminated_at"]),
            last_heartbeat_at=timestamps.to_iso(row["last_heartbeat_at"]),
        )


class AgentRepository:
    def __init__(self, db: Database, principal: Principal) -> None:
        self.db = db
        self.principal = principal

    async def register(
        self,
        name: str,
        specialization: str = "general",
        model: str = "unknown",
        session_id: str | None = None,
        task_id: str | None = None,
    ) -> Agent:
        for value, what in ((name, "name"), (specialization, "specialization"), (model, "model")):
            values.check_identifier(value, what=what, max_length=128)
        agent_id = str(uuid.uuid4())

        def insert(conn: driver.Connection) -> Agent:
            self._check_links(conn, session_id, task_id)
            row = conn.execute(
                "INSERT INTO agents (id, name, specialization, task_id, state, model, spawned_at,"
                " session_id, last_heartbeat_at) VALUES (?, ?, ?, ?, 'idle', ?, ?, ?, ?)"
                " RETURNING *",
                (
                    agent_id,
                    name,
                    specialization,
                    task_id,
                    model,
                    timestamps.now_db(),
                    session_id,
                    timestamps.now_db(),
                ),
            ).fetchone()
            return Agent.from_row(row)

        return await self.db.write(insert)

    async def heartbeat(
        self, agent_id: str, state: str | None = None, resource_usage: dict[str, Any] | None = None
    ) -> Agent:
        """Record that the agent is alive (optionally with a new state and resource usage)."""
        if state is not None and state not in STATES:
            raise InvalidInput(f"state must be one of {', '.join(STATES)}")
        usage = (
            None
            if resource_usage is None
            else values.encode_object(resource_usage, what="resource_usage")
        )

        def touch(conn: driver.Connection) -> Agent:
            row = conn.execute(
                f"UPDATE agents SET last_heartbeat_at = {timestamps.SQL_NOW},"
                " state = COALESCE(?, state), resource_usage = COALESCE(?, resource_usage),"
                f" terminated_at = CASE WHEN ? = 'terminated' THEN {timestamps.SQL_NOW}"
                " ELSE terminated_at END WHERE id = ? RETURNING *",
                (state, usage, state, agent_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"no agent {agent_id!r}")
            return Agent.from_row(row)

        return await self.db.write(touch)

    async def link(
        self, agent_id: str, session_id: str | None, task_id: str | None = None
    ) -> Agent:
        """Attach the agent to a session (and task); None detaches."""

        def update(conn: driver.Connection) -> Agent:
            self._check_links(conn, session_id, task_id)
            row = conn.execute(
                "UPDATE agents SET session_id = ?, task_id = ? WHERE id = ? RETURNING *",
                (session_id, task_id, agent_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"no agent {agent_id!r}")
            return Agent.from_row(row)

        return await self.db.write(update)

    async def get(self, agent_id: str) -> Agent:
        row = await self.db.fetchone("SELECT * FROM agents WHERE id = ?", (agent_id,))
        if row is None:
            raise NotFound(f"no agent {agent_id!r}")
        return Agent.from_row(row)

    async def list(self, state: str | None = None, session_id: str | None = None) -> list[Agent]:
        rows = await self.db.fetchall(
            "SELECT * FROM agents WHERE (? IS NULL OR state = ?) AND (? IS NULL OR session_id = ?)"
            " ORDER BY spawned_at DESC",
            (state, state, session_id, session_id),
        )
        return [Agent.from_row(r) for r in rows]

    def _check_links(
        self, conn: driver.Connection, session_id: str | None, task_id: str | None
    ) -> None:
        if session_id is not None and not owns_session(conn, session_id, self.principal):
            raise NotFound(f"no session {session_id!r}")
        if (
            task_id is not None
            and conn.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone() is None
        ):
            raise NotFound(f"no task {task_id!r}")
