"""The tables `migrate` copies, described once for both backends.

Each column has a kind, and each backend reads and writes every kind in one common form
(canonical values): JSON as Python objects, times as aware UTC datetimes, booleans as
bool, vectors as float32 arrays. A table's checksum is computed over those values, so the
same rows give the same checksum whichever database they were read from. The few
statements both backends' copy endpoints run alike are here too.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

INT, FLOAT, TEXT, BOOL, JSON, TIME, BYTES, VECTOR = (
    "int",
    "float",
    "text",
    "bool",
    "json",
    "time",
    "bytes",
    "vector",
)


class JsonNull:
    """A JSON ``null`` in a JSON column: a value (a redacted memory's, say), unlike SQL NULL,
    which both backends' drivers would otherwise hand out as the same ``None``."""

    def __repr__(self) -> str:
        return "JSON_NULL"


JSON_NULL = JsonNull()


def json_value(text: str) -> Any:
    """A JSON column's text as its canonical value (JSON_NULL for ``null``)."""
    value = json.loads(text)
    return JSON_NULL if value is None else value


def json_text(value: Any) -> str:
    return json.dumps(None if value is JSON_NULL else value, ensure_ascii=False)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    sqlite: str | None = None  # the column's name on SQLite when it differs (rowid)
    # What a NULL read from SQLite stands for, where PostgreSQL's column is NOT NULL (a
    # task's dependencies: the first SQLite layout allowed NULL and meant "none").
    null_as: str | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # the order rows are copied (and a resumed copy picks up) in
    identity: str | None = None  # a generated id on PostgreSQL, whose sequence follows
    space_id: int | None = None  # for the tables of one embedding space
    dim: int = 0
    where: str = ""  # rows not copied (derived state)

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def kinds(self) -> list[str]:
        return [c.kind for c in self.columns]


def _cols(spec: str) -> tuple[Column, ...]:
    """'name:kind, ...' (kind defaults to text); 'name:kind=value': NULL on SQLite is read
    as ``value`` (as it is stored)."""
    columns = []
    for part in spec.split(","):
        name, _, kind = part.strip().partition(":")
        kind, _, null_as = kind.partition("=")
        sqlite_name = "rowid" if name == "row_id" else None
        columns.append(Column(name, kind or TEXT, sqlite_name, null_as or None))
    return tuple(columns)


BASE_TABLES: tuple[Table, ...] = (
    Table(  # not the rows that belong to the database they are in: the schema version,
        # the memory index's progress (``memory_index_*``), a migration's own state
        "meta",
        _cols("key, value, updated_at:time"),
        ("key",),
        where="key != 'schema_version' AND substr(key, 1, 13) != 'memory_index_'"
        " AND substr(key, 1, 9) != 'migration'",
    ),
    Table(
        "sessions",
        _cols(
            "id, app_name, user_id, project_id, status, events:json, state:json,"
            " metadata:json, created_at:time, last_update_time:time, terminated_at:time,"
            " archived_at:time, last_seq:int, row_id:int"
        ),
        ("id",),
        identity="row_id",
    ),
    Table(
        "session_events",
        _cols(
            "session_id, seq:int, event_type, actor, content:json, state_delta:json,"
            " created_at:time"
        ),
        ("session_id", "seq"),
    ),
    Table(
        "tasks",
        _cols(
            "id, prompt, agent_type, priority:int, status, input_data:json, result_data:json,"
            " error_message, retry_count:int, max_retries:int, max_execution_timeout_seconds:int,"
            " submitted_at:time, started_at:time, completed_at:time, last_updated_at:time,"
            " created_by, parent_task_id, dependencies:json=[], session_id, claimed_by, row_id:int"
        ),
        ("id",),
        identity="row_id",
    ),
    Table(
        "agents",
        _cols(
            "id, name, specialization, task_id, state, model, spawned_at:time,"
            " terminated_at:time, resource_usage:json, session_id, last_heartbeat_at:time"
        ),
        ("id",),
    ),
    Table(
        "state",
        _cols("id:int, task_id, key, value:json, created_at:time, updated_at:time"),
        ("id",),
        identity="id",
    ),
    Table(
        "checkpoints",
        _cols("task_id, iteration:int, state:json, created_at:time, session_id"),
        ("task_id", "iteration"),
    ),
    Table(
        "memory_entries",
        _cols(
            "id:int, namespace, key, value:json, memory_type, version:int, is_deleted:bool,"
            " metadata:json, created_by, updated_by, created_at:time, updated_at:time,"
            " valid_from:time, valid_to:time, redacted_at:time, redacted_by"
        ),
        ("id",),
        identity="id",
    ),
    Table(
        "memory_links",
        _cols(
            "id:int, link_type, from_namespace, from_key, from_version:int, to_namespace,"
            " to_key, to_version:int, to_session, seq_start:int, seq_end:int,"
            " holds_until:time, reason, metadata:json, run_id, created_by, created_at:time,"
            " removed_at:time, removed_by, removed_run_id"
        ),
        ("id",),
        identity="id",
    ),
    Table(
        "consolidation_runs",
        _cols(
            "id, prefix, actor, mode, status, started_at:time, finished_at:time,"
            " counts:json, undoes, undone_by"
        ),
        ("id",),
    ),
    Table(
        "consolidation_proposals",
        _cols("run_id, id, kind, confidence:float, proposal:json, applied:json"),
        ("run_id", "id"),
    ),
    Table(
        "audit",
        _cols(
            "id:int, timestamp:time, agent_id, task_id, action_type, action_data:json, result,"
            " memory_operation_type, memory_namespace, memory_entry_id:int, actor"
        ),
        ("id",),
        identity="id",
    ),
    Table(
        "metrics",
        _cols(
            "id:int, timestamp:time, metric_name, metric_value:float, labels:json, principal,"
            " outcome, rows_touched:int, bucket:int"
        ),
        ("id",),
        identity="id",
    ),
    Table(
        "metric_minutes",
        _cols(
            "minute:time, metric_name, principal, outcome, bucket:int, calls:int,"
            " total_ms:float, max_ms:float, rows_touched:int"
        ),
        ("minute", "metric_name", "principal", "outcome", "bucket"),
    ),
    Table(
        "api_tokens",
        _cols(
            "id, name, token_hash, user_id, app_name, project_id, is_admin:bool,"
            " created_at:time, revoked_at:time, row_id:int"
        ),
        ("id",),
        identity="row_id",
    ),
    Table(
        "doc_roots",
        _cols(
            "id:int, name, path, excludes:json, added_at:time, last_scan_at:time, owner,"
            " project, visibility"
        ),
        ("id",),
        identity="id",
    ),
    Table(
        "document_index",
        _cols(
            "id:int, file_path, title, document_type, content_hash, chunk_count:int,"
            " embedding_model, embedding_blob:bytes, metadata:json, last_synced_at:time,"
            " sync_status, created_at:time, updated_at:time, root_id:int, size_bytes:int,"
            " mtime_ns:int, tags:json, lease_owner, lease_until:time, attempts:int,"
            " next_attempt_at:time"
        ),
        ("id",),
        identity="id",
    ),
    Table(
        "embedding_spaces",
        _cols(
            "id:int, identity, model_id, dim:int, status, generation:int, created_at:time,"
            " activated_at:time"
        ),
        ("id",),
        identity="id",
    ),
    Table(
        "space_documents",
        _cols("space_id:int, document_id:int, content_hash, chunk_count:int, indexed_at:time"),
        ("space_id", "document_id"),
    ),
)

CHUNK_COLUMNS = _cols(
    "id:int, document_id:int, seq:int, heading, heading_path:json, start_line:int,"
    " end_line:int, text, text_hash, token_count:int, grams, embedding:vector"
)
MEMORY_VECTOR_COLUMNS = _cols("id:int, entry_id:int, part:int, text_hash, embedding:vector")


def space_tables(space_id: int, dim: int) -> tuple[Table, Table]:
    return (
        Table(f"chunks_s{space_id}", CHUNK_COLUMNS, ("id",), "id", space_id, dim),
        Table(f"memory_vectors_s{space_id}", MEMORY_VECTOR_COLUMNS, ("id",), "id", space_id, dim),
    )


# -- canonical values -----------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """A stored time (SQLite's text, PostgreSQL's datetime or ISO text) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip().replace("T", " ", 1).removesuffix("Z")
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_text(moment: datetime | None) -> str | None:
    """SQLite's stored form of a time: 'YYYY-MM-DD HH:MM:SS.fff' (UTC)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _number(value: Any) -> Any:
    """JSON numbers compared as numbers: jsonb hands 1e16 back as an integer."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value) if abs(value) < 2**63 else value
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_number(v) for v in value]
    return value


def fingerprint(kind: str, value: Any) -> str:
    """A value's text for the checksum: equal for equal canonical values."""
    if value is None:
        return "\x00"
    if kind == JSON:
        if value is JSON_NULL:
            return "null"
        return json.dumps(_number(value), sort_keys=True, ensure_ascii=False)
    if kind == TIME:
        return time_text(value) or ""
    if kind == BOOL:
        return "1" if value else "0"
    if kind == FLOAT:
        return repr(float(value))
    if kind == VECTOR:
        return hashlib.sha256(np.asarray(value, dtype="<f4").tobytes()).hexdigest()
    if kind == BYTES:
        return hashlib.sha256(bytes(value)).hexdigest()
    return str(value)


@dataclass
class Checksum:
    rows: int = 0
    _digest: Any = field(default_factory=hashlib.sha256)

    def add(self, kinds: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.rows += 1
            text = "\x1f".join(fingerprint(k, v) for k, v in zip(kinds, row, strict=True))
            self._digest.update(text.encode("utf-8", "surrogatepass") + b"\x1e")

    def hexdigest(self) -> str:
        return str(self._digest.hexdigest())[:16]


# -- the SQL both backends' endpoints share (store/*/copy_endpoint.py) -------------------

# Tables whose rows a fresh database already holds (the seeded application memories):
# cleared before a copy into it.
DATA_TABLES = (
    "space_documents",
    "document_index",
    "doc_roots",
    "checkpoints",
    "state",
    "agents",
    "session_events",
    "tasks",
    "sessions",
    "audit",
    "metrics",
    "metric_minutes",
    "api_tokens",
    "memory_entries",
    "embedding_spaces",
)

# meta rows of the data (the embedding model, say), not of the database itself.
CLEAR_META = (
    "DELETE FROM meta WHERE key != 'schema_version'"
    " AND substr(key, 1, 13) != 'memory_index_' AND substr(key, 1, 9) != 'migration'"
)


def keyset_where(table: Table, after: Sequence[Any] | None, mark: str) -> tuple[str, list[Any]]:
    """The WHERE clause of a batch read: the table's filter, and keys after ``after``."""
    clauses = [table.where] if table.where else []
    params: list[Any] = []
    if after is not None:
        keys = ", ".join(table.key)
        marks = ", ".join(mark for _ in table.key)
        clauses.append(f"({keys}) > ({marks})")
        params.extend(after)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def holds_user_data(scalar: Any) -> bool:
    """Anything besides the seeded application memories."""
    checks = (
        "SELECT count(*) FROM memory_entries WHERE created_by IS DISTINCT FROM 'system'",
        "SELECT count(*) FROM sessions",
        "SELECT count(*) FROM tasks",
        "SELECT count(*) FROM document_index",
        "SELECT count(*) FROM api_tokens",
    )
    return any(scalar(sql) for sql in checks)
