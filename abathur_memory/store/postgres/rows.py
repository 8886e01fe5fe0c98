"""PostgreSQL rows as the records of core/records.py, built exactly as SQLite's rows.py
builds them. Queries select the column lists below, in this order; psycopg has already
decoded the jsonb columns, and times arrive as the records' ISO text (times.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from abathur_memory.core.records import (
    Checkpoint,
    MemoryEntry,
    Session,
    SessionEvent,
    SessionWithEvents,
    Task,
    TokenInfo,
)

Row = Sequence[Any]

MEMORY = (
    "id, namespace, key, version, value, memory_type, metadata, is_deleted, created_by,"
    " updated_by, created_at, updated_at"
)
EVENT = "seq, event_type, actor, content, state_delta, created_at"
SESSION = (
    "id, app_name, user_id, project_id, status, state, metadata, last_seq, created_at,"
    " last_update_time, terminated_at, archived_at"
)
TASK = (
    "id, prompt, agent_type, priority, status, input_data, result_data, error_message,"
    " retry_count, max_retries, max_execution_timeout_seconds, dependencies, parent_task_id,"
    " session_id, created_by, claimed_by, submitted_at, started_at, completed_at,"
    " last_updated_at"
)
CHECKPOINT = "task_id, iteration, state, session_id, created_at"
TOKEN = "id, name, user_id, app_name, project_id, is_admin, created_at, revoked_at"


def columns(names: str, alias: str) -> str:
    """``names`` qualified by a table alias (for joins and RETURNING of CTEs)."""
    return ", ".join(f"{alias}.{name.strip()}" for name in names.split(","))


def memory(row: Row) -> MemoryEntry:
    # Rows come from our own schema (CHECKed): construct without re-validating, as SQLite.
    return MemoryEntry.model_construct(
        id=row[0],
        namespace=row[1],
        key=row[2],
        version=row[3],
        value=row[4],
        memory_type=row[5],
        metadata=row[6],
        is_deleted=row[7],
        created_by=row[8],
        updated_by=row[9],
        created_at=row[10],
        updated_at=row[11],
    )


def event(row: Row) -> SessionEvent:
    return SessionEvent(
        seq=row[0],
        event_type=row[1],
        actor=row[2],
        content=row[3],
        state_delta=row[4],
        created_at=row[5],
    )


def _session_fields(row: Row) -> dict[str, object]:
    return {
        "id": row[0],
        "app_name": row[1],
        "user_id": row[2],
        "project_id": row[3],
        "status": row[4],
        "state": row[5],
        "metadata": row[6],
        "last_seq": row[7],
        "created_at": row[8],
        "last_update_time": row[9],
        "terminated_at": row[10],
        "archived_at": row[11],
    }


def session(row: Row) -> Session:
    return Session.model_validate(_session_fields(row))


def session_with_events(row: Row, events: list[SessionEvent]) -> SessionWithEvents:
    return SessionWithEvents.model_validate({**_session_fields(row), "events": events})


def task(row: Row) -> Task:
    return Task(
        id=row[0],
        prompt=row[1],
        agent_type=row[2],
        priority=row[3],
        status=row[4],
        input=row[5],
        result=row[6],
        error=row[7],
        retry_count=row[8],
        max_retries=row[9],
        timeout_seconds=row[10],
        dependencies=row[11],
        parent_task_id=row[12],
        session_id=row[13],
        created_by=row[14],
        claimed_by=row[15],
        submitted_at=row[16],
        started_at=row[17],
        completed_at=row[18],
        last_updated_at=row[19],
    )


def checkpoint(row: Row) -> Checkpoint:
    return Checkpoint(
        task_id=row[0], iteration=row[1], state=row[2], session_id=row[3], created_at=row[4]
    )


def token(row: Row) -> TokenInfo:
    return TokenInfo(
        id=row[0],
        name=row[1],
        user=row[2],
        app=row[3],
        project=row[4],
        admin=row[5],
        created_at=row[6],
        revoked_at=row[7],
    )
