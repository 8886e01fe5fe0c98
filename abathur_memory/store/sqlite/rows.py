"""SQLite rows as the records of core/records.py (JSON text decoded, times as ISO 8601)."""

from __future__ import annotations

import json
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
from abathur_memory.core.values import decode
from abathur_memory.store.sqlite.driver import Row
from abathur_memory.store.sqlite.timestamps import to_iso


def memory(row: Row) -> MemoryEntry:
    # Rows come from our own schema (CHECKed): construct without re-validating.
    return MemoryEntry.model_construct(
        id=row["id"],
        namespace=row["namespace"],
        key=row["key"],
        version=row["version"],
        value=json.loads(row["value"]),
        memory_type=row["memory_type"],
        metadata=json.loads(row["metadata"] or "{}"),
        is_deleted=bool(row["is_deleted"]),
        created_by=row["created_by"],
        updated_by=row["updated_by"],
        created_at=to_iso(row["created_at"]) or "",
        updated_at=to_iso(row["updated_at"]) or "",
    )


def event(row: Row) -> SessionEvent:
    # Rows come from our own schema (CHECKed): construct without re-validating, as memory().
    return SessionEvent.model_construct(
        seq=row["seq"],
        event_type=row["event_type"],
        actor=row["actor"],
        content=json.loads(row["content"]),
        state_delta=decode(row["state_delta"]),
        created_at=to_iso(row["created_at"]) or "",
    )


def _session_fields(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "app_name": row["app_name"],
        "user_id": row["user_id"],
        "project_id": row["project_id"],
        "status": row["status"],
        "state": json.loads(row["state"]),
        "metadata": json.loads(row["metadata"] or "{}"),
        "last_seq": row["last_seq"],
        "created_at": to_iso(row["created_at"]) or "",
        "last_update_time": to_iso(row["last_update_time"]) or "",
        "terminated_at": to_iso(row["terminated_at"]),
        "archived_at": to_iso(row["archived_at"]),
    }


def session(row: Row) -> Session:
    return Session.model_construct(**_session_fields(row))


def session_with_events(row: Row, events: list[SessionEvent]) -> SessionWithEvents:
    return SessionWithEvents.model_construct(**_session_fields(row), events=events)


def task(row: Row) -> Task:
    return Task(
        id=row["id"],
        prompt=row["prompt"],
        agent_type=row["agent_type"],
        priority=row["priority"],
        status=row["status"],
        input=json.loads(row["input_data"]),
        result=decode(row["result_data"]),
        error=row["error_message"],
        retry_count=row["retry_count"] or 0,
        max_retries=row["max_retries"] if row["max_retries"] is not None else 0,
        timeout_seconds=row["max_execution_timeout_seconds"] or 0,
        dependencies=json.loads(row["dependencies"] or "[]"),
        parent_task_id=row["parent_task_id"],
        session_id=row["session_id"],
        created_by=row["created_by"],
        claimed_by=row["claimed_by"],
        submitted_at=to_iso(row["submitted_at"]) or "",
        started_at=to_iso(row["started_at"]),
        completed_at=to_iso(row["completed_at"]),
        last_updated_at=to_iso(row["last_updated_at"]) or "",
    )


def checkpoint(row: Row) -> Checkpoint:
    return Checkpoint(
        task_id=row["task_id"],
        iteration=row["iteration"],
        state=json.loads(row["state"]),
        session_id=row["session_id"],
        created_at=to_iso(row["created_at"]) or "",
    )


def token(row: Row) -> TokenInfo:
    return TokenInfo(
        id=row["id"],
        name=row["name"],
        user=row["user_id"],
        app=row["app_name"],
        project=row["project_id"],
        admin=bool(row["is_admin"]),
        created_at=to_iso(row["created_at"]) or "",
        revoked_at=to_iso(row["revoked_at"]),
    )
