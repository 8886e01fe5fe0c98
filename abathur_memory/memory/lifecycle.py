"""Lifecycle maintenance: the policy is data (seed 000) and this applies it.

The policy lives in the memory ``app:abathur:config/memory_lifecycle_policies``:
``episodic_ttl_days`` (episodic memories not updated for that long are soft-deleted, audited
as the ``system:lifecycle`` actor) and ``archival_after_days`` (terminated sessions that old
are archived). ``consolidation_frequency`` is kept with the policy; nothing consolidates
memories yet. Work is done in short transactions of at most ``BATCH`` items.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, Field

from abathur_memory.core.records import ExpiredMemory
from abathur_memory.core.timestamps import days_ago
from abathur_memory.errors import InvalidInput
from abathur_memory.store.protocols import MemoryStore, SessionStore

log = logging.getLogger(__name__)

POLICY_NAMESPACE = "app:abathur:config"
POLICY_KEY = "memory_lifecycle_policies"
DEFAULT_POLICY = {"episodic_ttl_days": 90, "archival_after_days": 365}
ACTOR = "system:lifecycle"
BATCH = 500


class ExpiredOut(BaseModel):
    namespace: str
    key: str
    version: int


class LifecycleReport(BaseModel):
    policy: dict[str, Any]
    dry_run: bool
    expired_memories: list[ExpiredOut] = Field(default_factory=list)
    archived_sessions: list[str] = Field(default_factory=list)


def _out(items: list[ExpiredMemory]) -> list[ExpiredOut]:
    return [ExpiredOut(namespace=i.namespace, key=i.key, version=i.version) for i in items]


class LifecycleService:
    def __init__(self, memories: MemoryStore, sessions: SessionStore) -> None:
        self.memories = memories
        self.sessions = sessions

    async def policy(self) -> dict[str, Any]:
        entry = await self.memories.latest(POLICY_NAMESPACE, POLICY_KEY)
        policy: dict[str, Any] = dict(DEFAULT_POLICY)
        if entry is not None:
            if not isinstance(entry.value, dict):
                raise InvalidInput(f"{POLICY_NAMESPACE}/{POLICY_KEY} must be a JSON object")
            policy.update(entry.value)
        for name in ("episodic_ttl_days", "archival_after_days"):
            value = policy[name]
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise InvalidInput(
                    f"{POLICY_NAMESPACE}/{POLICY_KEY}: {name} must be a positive number of days"
                )
        return policy

    async def run(self, *, dry_run: bool = False) -> LifecycleReport:
        policy = await self.policy()
        report = LifecycleReport(policy=policy, dry_run=dry_run)
        memory_cutoff = days_ago(policy["episodic_ttl_days"])
        session_cutoff = days_ago(policy["archival_after_days"])
        if dry_run:
            report.expired_memories = _out(
                await self.memories.expired_episodic(memory_cutoff, None)
            )
            report.archived_sessions = await self.sessions.terminated_before(session_cutoff, None)
            return report
        # A read first: an idle database is not written (nor locked) for nothing.
        if await self.memories.expired_episodic(memory_cutoff, 1):
            while batch := await self.memories.expire_episodic(memory_cutoff, ACTOR, BATCH):
                report.expired_memories.extend(_out(batch))
        if await self.sessions.terminated_before(session_cutoff, 1):
            while archived := await self.sessions.archive_terminated(session_cutoff, BATCH):
                report.archived_sessions.extend(archived)
        if report.expired_memories or report.archived_sessions:
            log.info(
                "lifecycle: expired %d episodic memories, archived %d sessions",
                len(report.expired_memories),
                len(report.archived_sessions),
            )
        return report
