"""Audit rows, always written inside the transaction of the change they describe."""

from __future__ import annotations

import json
from typing import Any

from abathur_memory.store.sqlite import driver

# memory_operation_type values allowed by the schema.
OPERATIONS = ("create", "update", "delete", "consolidate", "publish")


def record_memory(
    conn: driver.Connection,
    *,
    operation: str,
    namespace: str,
    entry_id: int | None,
    actor: str,
    action: str,
    data: dict[str, Any],
    result: str = "ok",
) -> None:
    """One audit row for a memory operation (or a denied attempt: ``operation`` may be None)."""
    conn.execute(
        "INSERT INTO audit (action_type, action_data, result, memory_operation_type,"
        " memory_namespace, memory_entry_id, actor) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            action,
            json.dumps(data, ensure_ascii=False, separators=(",", ":")),
            result,
            operation if operation in OPERATIONS else None,
            namespace,
            entry_id,
            actor,
        ),
    )


def record_memory_many(
    conn: driver.Connection, *, action: str, actor: str, rows: list[tuple[str, str, int, str]]
) -> None:
    """Many audit rows of one action: (operation, namespace, entry id, action data JSON)."""
    if rows:
        conn.executemany(
            "INSERT INTO audit (action_type, action_data, result, memory_operation_type,"
            " memory_namespace, memory_entry_id, actor) VALUES (?, ?, 'ok', ?, ?, ?, ?)",
            [
                (action, data, operation, namespace, entry_id, actor)
                for operation, namespace, entry_id, data in rows
            ],
        )
