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
    trusted,
)
from abathur_memory.core.replies import cut_text

Row = Sequence[Any]

MEMORY = (
    "id, namespace, key, version, value, memory_type, metadata, is_deleted, created_by,"
    " updated_by, created_at, updated_at, valid_from, valid_to, redacted_at, redacted_by"
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


# -- listings: long columns cut in SQL (core/replies.py) ---------------------------------

NO_CUT = 2**31 - 1  # no value is that long (PostgreSQL: left() takes an int)
TEXT_COLUMNS = ("prompt",)  # the other cut columns are jsonb


def cut_expression(column: str, limit: int | None) -> str:
    """``column`` as a listing reads it: whole when its text is at most ``limit`` bytes,
    else its first ``limit`` characters (jsonb: as a JSON string), so PostgreSQL never sends
    the rest. Sizes are of the text form (jsonb prints ', ' and ': ')."""
    n = NO_CUT if limit is None else int(limit)
    if column.rsplit(".", 1)[-1] in TEXT_COLUMNS:
        return f"CASE WHEN octet_length({column}) <= {n} THEN {column} ELSE left({column}, {n}) END"
    return (
        f"CASE WHEN octet_length({column}::text) <= {n} THEN {column}"
        f" ELSE to_jsonb(left({column}::text, {n})) END"
    )


def listed(names: str, cut_columns: tuple[str, ...], limit: int | None, alias: str = "") -> str:
    """The columns ``names`` for a listing: those in ``cut_columns`` cut (cut_expression),
    then the full size in bytes of each of them, in the order of ``cut_columns``."""
    qualified = [f"{alias}.{n.strip()}" if alias else n.strip() for n in names.split(",")]
    chosen = [
        cut_expression(q, limit) if q.rsplit(".", 1)[-1] in cut_columns else q for q in qualified
    ]
    prefix = f"{alias}." if alias else ""
    sizes = [f"octet_length({prefix}{c}::text)" for c in cut_columns]
    return ", ".join(chosen + sizes)


def _cut(
    value: Any, size: int | None, limit: int, marks: dict[str, int], field: str, empty: Any = ...
) -> Any:
    """A value selected with cut_expression(): itself, or (longer than ``limit``) the
    beginning of its text (``empty`` instead for a field that must stay an object), with its
    full size noted in ``marks``."""
    if value is None or size is None or size <= limit:
        return value
    marks[field] = size
    return cut_text(value, limit) if empty is ... else empty


def memory(row: Row, limit: int | None = None) -> MemoryEntry:
    """A memory; with ``limit``, a row of listed(MEMORY, ("value",), limit)."""
    marks: dict[str, int] = {}
    value = row[4] if limit is None else _cut(row[4], row[16], limit, marks, "value")
    # Rows come from our own schema (CHECKed): built without re-validating, as SQLite.
    return trusted(
        MemoryEntry,
        {
            "namespace": row[1],
            "key": row[2],
            "version": row[3],
            "value": value,
            "memory_type": row[5],
            "metadata": row[6],
            "is_deleted": row[7],
            "created_by": row[8],
            "updated_by": row[9],
            "created_at": row[10],
            "updated_at": row[11],
            "truncated": marks or None,
            "valid_from": row[12],
            "valid_to": row[13],
            "redacted_at": row[14],
            "redacted_by": row[15],
            "id": row[0],
        },
    )


def event(row: Row, limit: int | None = None) -> SessionEvent:
    """An event; with ``limit``, a row of listed(EVENT, ("content", "state_delta"), limit)
    (a delta too long to list is left out: it must stay an object)."""
    marks: dict[str, int] = {}
    content, delta = row[3], row[4]
    if limit is not None:
        content = _cut(content, row[6], limit, marks, "content")
        delta = _cut(delta, row[7], limit, marks, "state_delta", None)
    return SessionEvent(
        truncated=marks or None,
        seq=row[0],
        event_type=row[1],
        actor=row[2],
        content=content,
        state_delta=delta,
        created_at=row[5],
    )


def _session_fields(row: Row, limit: int | None = None) -> dict[str, object]:
    marks: dict[str, int] = {}
    state = row[5] if limit is None else _cut(row[5], row[12], limit, marks, "state", {})
    return {
        "truncated": marks or None,
        "id": row[0],
        "app_name": row[1],
        "user_id": row[2],
        "project_id": row[3],
        "status": row[4],
        "state": state,
        "metadata": row[6],
        "last_seq": row[7],
        "created_at": row[8],
        "last_update_time": row[9],
        "terminated_at": row[10],
        "archived_at": row[11],
    }


def session(row: Row, limit: int | None = None) -> Session:
    """A session; with ``limit``, a row of listed(SESSION, ("state",), limit)."""
    return Session.model_validate(_session_fields(row, limit))


def session_with_events(row: Row, events: list[SessionEvent]) -> SessionWithEvents:
    return SessionWithEvents.model_validate({**_session_fields(row), "events": events})


TASK_CUT = ("prompt", "input_data", "result_data")


def task(row: Row, limit: int | None = None) -> Task:
    """A task; with ``limit``, a row of listed(TASK, TASK_CUT, limit) (an input too long to
    list is left out: it must stay an object)."""
    marks: dict[str, int] = {}
    prompt, input_value, result = row[1], row[5], row[6]
    if limit is not None:
        prompt = _cut(prompt, row[20], limit, marks, "prompt")
        input_value = _cut(input_value, row[21], limit, marks, "input", {})
        result = _cut(result, row[22], limit, marks, "result")
    return Task(
        truncated=marks or None,
        id=row[0],
        prompt=prompt,
        agent_type=row[2],
        priority=row[3],
        status=row[4],
        input=input_value,
        result=result,
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
