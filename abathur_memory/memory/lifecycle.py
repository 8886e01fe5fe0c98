"""Lifecycle maintenance: the policy is data (seed 000) and this applies it.

The policy lives in the memory ``app:abathur:config/memory_lifecycle_policies``:
``episodic_ttl_days`` (episodic memories not updated for that long are soft-deleted, audited
as the ``system:lifecycle`` actor) and ``archival_after_days`` (terminated sessions that old
are archived). Work is done in short transactions of at most ``BATCH`` items.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from abathur_memory.errors import InvalidInput
from abathur_memory.memory import audit
from abathur_memory.store.sqlite import driver, timestamps
from abathur_memory.store.sqlite.database import Database

log = logging.getLogger(__name__)

POLICY_NAMESPACE = "app:abathur:config"
POLICY_KEY = "memory_lifecycle_policies"
DEFAULT_POLICY = {"episodic_ttl_days": 90, "archival_after_days": 365}
ACTOR = "system:lifecycle"
BATCH = 500

_EXPIRED_EPISODIC = """
SELECT m.id, m.namespace, m.key, m.version FROM memory_entries AS m
WHERE m.memory_type = 'episodic' AND m.is_deleted = 0 AND m.updated_at < :cutoff
  AND m.version = (SELECT MAX(v.version) FROM memory_entries AS v
                   WHERE v.namespace = m.namespace AND v.key = m.key)
ORDER BY m.updated_at
LIMIT :limit
"""

_OLD_TERMINATED = """
SELECT id FROM sessions
WHERE status = 'terminated' AND terminated_at < :cutoff
ORDER BY terminated_at
LIMIT :limit
"""


@dataclass
class MaintenanceReport:
    policy: dict[str, Any]
    dry_run: bool
    expired_memories: list[dict[str, Any]] = field(default_factory=list)
    archived_sessions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "dry_run": self.dry_run,
            "expired_memories": self.expired_memories,
            "archived_sessions": self.archived_sessions,
        }


class LifecycleService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def policy(self) -> dict[str, Any]:
        row = await self.db.fetchone(
            "SELECT value FROM memory_entries WHERE namespace = ? AND key = ? AND is_deleted = 0"
            " ORDER BY version DESC LIMIT 1",
            (POLICY_NAMESPACE, POLICY_KEY),
        )
        policy = dict(DEFAULT_POLICY)
        if row is not None:
            stored = json.loads(row["value"])
            if not isinstance(stored, dict):
                raise InvalidInput(f"{POLICY_NAMESPACE}/{POLICY_KEY} must be a JSON object")
            policy.update(stored)
        for name in ("episodic_ttl_days", "archival_after_days"):
            value = policy[name]
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise InvalidInput(
                    f"{POLICY_NAMESPACE}/{POLICY_KEY}: {name} must be a positive number of days"
                )
        return policy

    async def run(self, *, dry_run: bool = False) -> MaintenanceReport:
        policy = await self.policy()
        report = MaintenanceReport(policy, dry_run)
        memory_cutoff = timestamps.ago_db(policy["episodic_ttl_days"])
        session_cutoff = timestamps.ago_db(policy["archival_after_days"])
        if dry_run:
            rows = await self.db.fetchall(_EXPIRED_EPISODIC, {"cutoff": memory_cutoff, "limit": -1})
            report.expired_memories = [_describe(r) for r in rows]
            rows = await self.db.fetchall(_OLD_TERMINATED, {"cutoff": session_cutoff, "limit": -1})
            report.archived_sessions = [r["id"] for r in rows]
            return report
        while batch := await self.db.write(_expire_batch, memory_cutoff):
            report.expired_memories.extend(batch)
        while archived := await self.db.write(_archive_batch, session_cutoff):
            report.archived_sessions.extend(archived)
        if report.expired_memories or report.archived_sessions:
            log.info(
                "lifecycle: expired %d episodic memories, archived %d sessions",
                len(report.expired_memories),
                len(report.archived_sessions),
            )
        return report


def _describe(row: driver.Row) -> dict[str, Any]:
    return {"namespace": row["namespace"], "key": row["key"], "version": row["version"]}


def _expire_batch(conn: driver.Connection, cutoff: str) -> list[dict[str, Any]]:
    rows = conn.execute(_EXPIRED_EPISODIC, {"cutoff": cutoff, "limit": BATCH}).fetchall()
    now = timestamps.now_db()
    for row in rows:
        conn.execute(
            "UPDATE memory_entries SET is_deleted = 1, updated_at = ?, updated_by = ?"
            " WHERE namespace = ? AND key = ? AND is_deleted = 0",
            (now, ACTOR, row["namespace"], row["key"]),
        )
        audit.record_memory(
            conn,
            operation="delete",
            namespace=row["namespace"],
            entry_id=row["id"],
            actor=ACTOR,
            action="memory_expire",
            data={"key": row["key"], "version": row["version"], "reason": "episodic_ttl_days"},
        )
    return [_describe(r) for r in rows]


def _archive_batch(conn: driver.Connection, cutoff: str) -> list[str]:
    rows = conn.execute(_OLD_TERMINATED, {"cutoff": cutoff, "limit": BATCH}).fetchall()
    ids = [r["id"] for r in rows]
    for session_id in ids:
        conn.execute(
            f"UPDATE sessions SET status = 'archived', archived_at = {timestamps.SQL_NOW},"
            f" last_update_time = {timestamps.SQL_NOW} WHERE id = ?",
            (session_id,),
        )
    return ids
