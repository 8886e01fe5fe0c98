"""The columns an import writes, in the same order for both backends (their SQL lists them
so). ``time`` turns a record's ISO time into what the backend's statement takes; JSON goes
as text."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from abathur_memory.core.records import Checkpoint, Session, SessionEvent, Task
from abathur_memory.core.transfer import ImportedLink

Time = Callable[[str | None], str | None]

# Columns after the owner: what an import may overwrite in a session that exists.
SESSION_CHANGEABLE_FROM = 3


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def session_columns(s: Session, time: Time) -> tuple[Any, ...]:
    """id, app_name, user_id, project_id, status, state, metadata, last_seq, created_at,
    last_update_time, terminated_at, archived_at."""
    return (
        s.id,
        s.app_name,
        s.user_id,
        s.project_id,
        s.status,
        json_text(s.state),
        json_text(s.metadata),
        s.last_seq,
        time(s.created_at),
        time(s.last_update_time),
        time(s.terminated_at),
        time(s.archived_at),
    )


def event_columns(session_id: str, e: SessionEvent, time: Time) -> tuple[Any, ...]:
    """session_id, seq, event_type, actor, content, state_delta, created_at."""
    delta = None if e.state_delta is None else json_text(e.state_delta)
    return (
        session_id,
        e.seq,
        e.event_type,
        e.actor,
        json_text(e.content),
        delta,
        time(e.created_at),
    )


def task_columns(t: Task, time: Time) -> tuple[Any, ...]:
    """id, prompt, agent_type, priority, status, input_data, result_data, error_message,
    retry_count, max_retries, max_execution_timeout_seconds, submitted_at, started_at,
    completed_at, last_updated_at, created_by, parent_task_id, dependencies, session_id,
    claimed_by."""
    return (
        t.id,
        t.prompt,
        t.agent_type,
        t.priority,
        t.status,
        json_text(t.input),
        None if t.result is None else json_text(t.result),
        t.error,
        t.retry_count,
        t.max_retries,
        t.timeout_seconds,
        time(t.submitted_at),
        time(t.started_at),
        time(t.completed_at),
        time(t.last_updated_at),
        t.created_by,
        t.parent_task_id,
        json_text(t.dependencies),
        t.session_id,
        t.claimed_by,
    )


def checkpoint_columns(c: Checkpoint, time: Time) -> tuple[Any, ...]:
    """task_id, iteration, state, created_at, session_id."""
    return (c.task_id, c.iteration, json_text(c.state), time(c.created_at), c.session_id)


def link_columns(link: ImportedLink, time: Time) -> tuple[Any, ...]:
    """link_type, from_namespace, from_key, from_version, to_namespace, to_key, to_version,
    to_session, seq_start, seq_end, holds_until, reason, metadata, run_id, created_by,
    created_at, removed_at, removed_by."""
    return (
        link.link_type,
        link.from_namespace,
        link.from_key,
        link.from_version,
        link.to_namespace,
        link.to_key,
        link.to_version,
        link.to_session,
        link.seq_start,
        link.seq_end,
        time(link.holds_until),
        link.reason,
        link.metadata_text,
        link.run_id,
        link.created_by,
        time(link.created_at),
        time(link.removed_at),
        link.removed_by,
    )
