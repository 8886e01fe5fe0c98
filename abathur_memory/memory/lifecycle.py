"""Lifecycle maintenance: the policy is data (seed 000) and this applies it.

The policy lives in the memory ``app:abathur:config/memory_lifecycle_policies``:
``episodic_ttl_days`` (episodic memories not updated for that long are soft-deleted, audited
as the ``system:lifecycle`` actor) and ``archival_after_days`` (terminated sessions that old
are archived). Consolidation is opt-in: ``consolidation_frequency`` (daily, weekly,
monthly, off) runs ``memory_consolidate`` on each prefix of ``consolidation_namespaces``
when its last scheduled run is that old; it proposes only, unless
``consolidation_min_confidence`` says which proposals to apply (memory/consolidation.py).
Work is done in short transactions of at most ``BATCH`` items.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, Field

from abathur_memory.core.records import ExpiredMemory
from abathur_memory.core.timestamps import days_ago
from abathur_memory.errors import InvalidInput
from abathur_memory.memory.consolidation import ConsolidationService, ScheduledRun, schedule_of
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
    consolidation: list[ScheduledRun] = Field(default_factory=list)


def _out(items: list[ExpiredMemory]) -> list[ExpiredOut]:
    return [ExpiredOut(namespace=i.namespace, key=i.key, version=i.version) for i in items]


class LifecycleService:
    def __init__(
        self,
        memories: MemoryStore,
        sessions: SessionStore,
        consolidation: ConsolidationService | None = None,
    ) -> None:
        self.memories = memories
        self.sessions = sessions
        self.consolidation = consolidation

    async def policy(self) -> dict[str, Any]:
        entry = await self.memories.latest(POLICY_NAMESPACE, POLICY_KEY)
        policy: dict[str, Any] = dict(DEFAULT_POLICY)
        if entry is not None:
            if not isinstance(entry.value, dict):
                raise InvalidInput(f"{POLICY_NAMESPACE}/{POLICY_KEY} must be a JSON object")
            policy.update(entry.value)
        schedule_of(policy)  # checked here, so that a dry run reports a mistake too
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
            if self.consolidation is not None:
                report.consolidation = await self.consolidation.scheduled(policy, dry_run=True)
            return report
        # A read first: an idle database is not written (nor locked) for nothing.
        if await self.memories.expired_episodic(memory_cutoff, 1):
            while batch := await self.memories.expire_episodic(memory_cutoff, ACTOR, BATCH):
                report.expired_memories.extend(_out(batch))
        if await self.sessions.terminated_before(session_cutoff, 1):
            while archived := await self.sessions.archive_terminated(session_cutoff, BATCH):
                report.archived_sessions.extend(archived)
        if self.consolidation is not None:
            report.consolidation = await self.consolidation.scheduled(policy)
        if report.expired_memories or report.archived_sessions:
            log.info(
                "lifecycle: expired %d episodic memories, archived %d sessions",
                len(report.expired_memories),
                len(report.archived_sessions),
            )
        return report
