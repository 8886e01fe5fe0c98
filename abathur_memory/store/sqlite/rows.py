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
    trusted,
)
from abathur_memory.core.replies import cut_text
from abathur_memory.core.values import decode
from abathur_memory.store.sqlite.driver import Row
from abathur_memory.store.sqlite.timestamps import to_iso

# -- listings: long columns cut in SQL (core/replies.py) ---------------------------------

NO_CUT = 2**31 - 1  # longer than any value: nothing is cut


def cut(column: str, limit: int | str | None, table: str = "") -> str:
    """Select ``column`` for a listing: whole when it is at most ``limit`` bytes, else only
    its first ``limit`` characters (the rest never leaves SQLite), and its full size as
    ``<column>_bytes`` (octet_length reads the size without the content). ``limit`` is a
    number, or a named parameter such as ``:cut``."""
    qualified = f"{table}.{column}" if table else column
    n = limit if isinstance(limit, str) else NO_CUT if limit is None else int(limit)
    return (
        f"CASE WHEN octet_length({qualified}) <= {n} THEN {qualified}"
        f" ELSE substr({qualified}, 1, {n}) END AS {column},"
        f" octet_length({qualified}) AS {column}_bytes"
    )


MEMORY_COLUMNS = (
    "id, namespace, key, version, memory_type, metadata, is_deleted, created_by, updated_by,"
    " created_at, updated_at, valid_from, valid_to, redacted_at, redacted_by"
)


def listed_memory_columns(limit: int | str | None, table: str = "m") -> str:
    """The columns memory() reads, ``value`` cut for a listing."""
    plain = ", ".join(f"{table}.{name.strip()}" for name in MEMORY_COLUMNS.split(","))
    return f"{plain}, {cut('value', limit, table)}"


def _cut_json(
    row: Row,
    column: str,
    limit: int,
    marks: dict[str, int],
    *,
    field: str | None = None,
    empty: Any = ...,
    decode_json: bool = True,
) -> Any:
    """A column selected with cut(): its value; or, longer than ``limit``, the beginning of
    its text (``empty`` instead for a field that must stay an object), with its full size
    noted in ``marks`` under ``field``."""
    text = row[column]
    if text is None:
        return None
    size = row[f"{column}_bytes"]
    if size > limit:
        marks[field or column] = size
        return cut_text(text, limit) if empty is ... else empty
    return json.loads(text) if decode_json else text


def memory(row: Row, limit: int | None = None) -> MemoryEntry:
    """A memory; with ``limit``, from a listing whose value was selected with cut()."""
    marks: dict[str, int] = {}
    value = json.loads(row["value"]) if limit is None else _cut_json(row, "value", limit, marks)
    # Rows come from our own schema (CHECKed): built without re-validating.
    return trusted(
        MemoryEntry,
        {
            "namespace": row["namespace"],
            "key": row["key"],
            "version": row["version"],
            "value": value,
            "memory_type": row["memory_type"],
            "metadata": _metadata(row["metadata"]),
            "is_deleted": bool(row["is_deleted"]),
            "created_by": row["created_by"],
            "updated_by": row["updated_by"],
            "created_at": to_iso(row["created_at"]) or "",
            "updated_at": to_iso(row["updated_at"]) or "",
            "truncated": marks or None,
            **_validity(row),
            "id": row["id"],
        },
    )


def _metadata(text: str | None) -> dict[str, Any]:
    """Most memories have none: ``{}`` without the JSON parser (1.5 µs a listed memory)."""
    return {} if text is None or text == "{}" else json.loads(text)


_VALIDITY = ("valid_from", "valid_to", "redacted_at", "redacted_by")


def _validity(row: Row) -> dict[str, Any]:
    """Validity and redaction (SELECT * and listings select them; None where a query did
    not)."""
    try:
        return {
            "valid_from": to_iso(row["valid_from"]),
            "valid_to": to_iso(row["valid_to"]),
            "redacted_at": to_iso(row["redacted_at"]),
            "redacted_by": row["redacted_by"],
        }
    except IndexError:  # a query that selected some of them, or none
        names = row.keys()
        found: dict[str, Any] = dict.fromkeys(_VALIDITY)
        for name in _VALIDITY:
            if name in names:
                found[name] = row[name] if name == "redacted_by" else to_iso(row[name])
        return found


EVENT_COLUMNS = "seq, event_type, actor, created_at"


def listed_event_columns(limit: int | None) -> str:
    return f"{EVENT_COLUMNS}, {cut('content', limit)}, {cut('state_delta', limit)}"


def event(row: Row, limit: int | None = None) -> SessionEvent:
    """An event; with ``limit``, from a page whose content and delta were selected with
    cut() (a delta too long to list is left out: it must stay an object)."""
    marks: dict[str, int] = {}
    if limit is None:
        content, delta = json.loads(row["content"]), decode(row["state_delta"])
    else:
        content = _cut_json(row, "content", limit, marks)
        delta = _cut_json(row, "state_delta", limit, marks, empty=None)
    # Rows come from our own schema (CHECKed): construct without re-validating, as memory().
    return SessionEvent.model_construct(
        seq=row["seq"],
        event_type=row["event_type"],
        actor=row["actor"],
        content=content,
        state_delta=delta,
        created_at=to_iso(row["created_at"]) or "",
        truncated=marks or None,
    )


SESSION_COLUMNS = (
    "id, app_name, user_id, project_id, status, metadata, last_seq, created_at,"
    " last_update_time, terminated_at, archived_at"
)


def listed_session_columns(limit: int | None) -> str:
    return f"{SESSION_COLUMNS}, {cut('state', limit)}"


def _session_fields(row: Row, limit: int | None = None) -> dict[str, Any]:
    marks: dict[str, int] = {}
    if limit is None:
        state = json.loads(row["state"])
    else:  # a state too long to list is left out: it must stay an object
        state = _cut_json(row, "state", limit, marks, empty={})
    return {
        "truncated": marks or None,
        "id": row["id"],
        "app_name": row["app_name"],
        "user_id": row["user_id"],
        "project_id": row["project_id"],
        "status": row["status"],
        "state": state,
        "metadata": json.loads(row["metadata"] or "{}"),
        "last_seq": row["last_seq"],
        "created_at": to_iso(row["created_at"]) or "",
        "last_update_time": to_iso(row["last_update_time"]) or "",
        "terminated_at": to_iso(row["terminated_at"]),
        "archived_at": to_iso(row["archived_at"]),
    }


def session(row: Row, limit: int | None = None) -> Session:
    """A session; with ``limit``, from a listing whose state was selected with cut()."""
    return Session.model_construct(**_session_fields(row, limit))


def session_with_events(row: Row, events: list[SessionEvent]) -> SessionWithEvents:
    return SessionWithEvents.model_construct(**_session_fields(row), events=events)


TASK_COLUMNS = (
    "id, agent_type, priority, status, error_message, retry_count, max_retries,"
    " max_execution_timeout_seconds, dependencies, parent_task_id, session_id, created_by,"
    " claimed_by, submitted_at, started_at, completed_at, last_updated_at"
)


def listed_task_columns(limit: int | None) -> str:
    return (
        f"{TASK_COLUMNS}, {cut('prompt', limit)}, {cut('input_data', limit)},"
        f" {cut('result_data', limit)}"
    )


def task(row: Row, limit: int | None = None) -> Task:
    """A task; with ``limit``, from a listing whose prompt, input and result were selected
    with cut() (an input too long to list is left out: it must stay an object)."""
    marks: dict[str, int] = {}
    if limit is None:
        prompt = row["prompt"]
        input_value = json.loads(row["input_data"])
        result = decode(row["result_data"])
    else:
        prompt = _cut_json(row, "prompt", limit, marks, decode_json=False)
        input_value = _cut_json(row, "input_data", limit, marks, field="input", empty={})
        result = _cut_json(row, "result_data", limit, marks, field="result")
    return Task(
        truncated=marks or None,
        id=row["id"],
        prompt=prompt,
        agent_type=row["agent_type"],
        priority=row["priority"],
        status=row["status"],
        input=input_value,
        result=result,
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
