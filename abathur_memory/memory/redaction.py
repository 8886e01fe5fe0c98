"""Redaction and erasure: the rules.

Redacting a version (write access to its namespace) erases its content and keeps its
record: who wrote it when, and who redacted it when. Erasing a user (admins only) removes
its memories, sessions and tasks; the audit keeps a row saying who erased what, with counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from abathur_memory.core import values
from abathur_memory.core.principal import Principal
from abathur_memory.core.records import MemoryEntry
from abathur_memory.errors import InvalidInput
from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.namespaces import Access, clean, parse
from abathur_memory.store.protocols import RedactionStore


class RedactionService:
    def __init__(
        self, store: RedactionStore, guard: AccessGuard, changed: Callable[[], None]
    ) -> None:
        self.store = store
        self.guard = guard
        self.changed = changed  # wakes the memory indexer

    async def redact(
        self, principal: Principal, namespace: str, key: str, version: int
    ) -> MemoryEntry:
        namespace, key = clean(namespace), values.check_identifier(key, what="key")
        values.check_integer(version, what="version", low=1)
        await self.guard.check(principal, namespace, parse(namespace), Access.WRITE, "redact", key)
        entry = await self.store.redact(namespace, key, version, principal.actor)
        self.changed()
        return entry

    async def erase_user(self, principal: Principal, user: str) -> dict[str, Any]:
        user = values.check_identifier(user, what="user")
        if ":" in user:
            raise InvalidInput("user must not contain ':' (it names user:<user>)")
        if not principal.admin:
            self.guard.refuse(principal, f"user:{user}", "erase", "only an admin may erase a user")
        counts = await self.store.erase_user(user, principal.actor)
        self.changed()
        return counts
